"""The source root `operator/` must never shadow the standard library's `operator`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_operator_folder_is_not_a_package() -> None:
    assert not (REPO / "operator" / "__init__.py").exists(), "operator/ is a source root, not a package"


def test_import_operator_gives_the_standard_library_even_from_the_repository_root() -> None:
    code = "import operator, sys; print(operator.__file__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(result.stdout.strip()).resolve().parent == stdlib, result.stdout


def test_the_package_is_importable_by_its_own_name() -> None:
    spec = importlib.util.find_spec("secretrotation")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve().parent == REPO / "operator" / "secretrotation"
