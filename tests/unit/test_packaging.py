"""Packaging: the source root `operator/` never shadows the standard library's `operator`, and
the shipped distribution holds the operator only, never the development tooling of dev/."""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Development tooling, by the names of its package, modules and folders: none may ship.
DEV_NAMES = ("secretrotation_dev", "devcluster", "podsim", "kubelet", "demo", "controlplane")
# Only provisioning a development machine may touch the system's package manager.
APT_WORDS = (b"apt-get", b"sources.list")
# Local state and build output of a checkout, never part of what a build reads.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", ".cluster", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".benchmarks"
)


def _build(argv: list[str], cwd: Path) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def _wheel_of(project: Path, out: Path) -> Path:
    """Build ``project`` offline, with the venv's own setuptools, and return its wheel."""
    _build(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out),
         str(project)],
        cwd=out,
    )  # fmt: skip
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The root distribution's wheel, built from a clean copy of the whole checkout, dev/ included.

    A copy, so that no build/ folder or egg-info left by an earlier build can add or hide files.
    """
    source = tmp_path_factory.mktemp("checkout") / "secretrotation"
    shutil.copytree(REPO, source, ignore=NOT_SOURCES)
    assert (source / "dev" / "secretrotation_dev").is_dir(), "the copy must hold dev/, or the test proves nothing"
    return zipfile.ZipFile(_wheel_of(source, tmp_path_factory.mktemp("wheel")))


def _metadata(wheel: zipfile.ZipFile) -> list[tuple[str, str]]:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    headers = HeaderParser().parsestr(wheel.read(name).decode())
    return [(key, value) for key, value in headers.items()]


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
    dev = importlib.util.find_spec("secretrotation_dev")
    assert dev is not None and dev.origin is not None
    assert Path(dev.origin).resolve().parent == REPO / "dev" / "secretrotation_dev"


def test_the_dev_tooling_is_not_under_operator() -> None:
    found = [
        path.relative_to(REPO).as_posix()
        for path in (REPO / "operator").rglob("*")
        if "__pycache__" not in path.parts
        and not path.parent.name.endswith(".egg-info")
        and any(name in path.name for name in DEV_NAMES)
    ]
    assert not found, f"development tooling belongs in dev/, not in the shipped source root: {found}"


def test_the_operator_never_imports_the_dev_tooling() -> None:
    importers = []
    for path in (REPO / "operator" / "secretrotation").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            if any(m.split(".")[0] == "secretrotation_dev" for m in modules):
                importers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not importers, f"the operator imports the dev tooling, which never ships: {importers}"


def test_the_wheel_holds_the_operator_and_no_dev_tooling(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "secretrotation/adapters/cli.py" in names, names
    assert "secretrotation/__main__.py" in names, names
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"secretrotation"}, f"the wheel holds more than the operator: {sorted(packages)}"
    shipped = [name for name in names if any(dev in name for dev in DEV_NAMES)]
    assert not shipped, f"development tooling in the wheel: {shipped}"


def test_no_file_in_the_wheel_touches_the_package_manager(wheel: zipfile.ZipFile) -> None:
    mentions = [name for name in wheel.namelist() if any(word in wheel.read(name) for word in APT_WORDS)]
    assert not mentions, f"files in the wheel mention {[w.decode() for w in APT_WORDS]}: {mentions}"


def test_the_wheel_does_not_need_yaml_at_run_time(wheel: zipfile.ZipFile) -> None:
    requires = [value for key, value in _metadata(wheel) if key == "Requires-Dist"]
    assert any(r.startswith("kopf") for r in requires), requires
    # Extras (test) may list it: the tests read YAML manifests; the operator never does.
    runtime = [r for r in requires if "extra ==" not in r]
    assert not [r for r in runtime if r.lower().replace("-", "").startswith("pyyaml")], runtime


def test_the_demo_installed_non_editable_finds_the_checkout_from_the_working_directory(tmp_path: Path) -> None:
    source, target = tmp_path / "dev", tmp_path / "site"
    shutil.copytree(REPO / "dev", source, ignore=NOT_SOURCES)
    dev_wheel = _wheel_of(source, tmp_path)
    _build([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
            str(dev_wheel)], cwd=tmp_path)  # fmt: skip
    code = (
        "from pathlib import Path; from secretrotation_dev import demo; "
        "print(demo.__file__); print(demo.find_repository()); demo.find_repository(Path('/'))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("SECRETROTATION_REPO", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO / "tests" / "unit", env=env, capture_output=True, text=True
    )
    lines = result.stdout.splitlines()
    assert Path(lines[0]).is_relative_to(target), f"the installed copy was not the one imported: {lines[0]}"
    assert Path(lines[1]) == REPO, result.stdout
    assert result.returncode != 0 and "crds/secretrotation.yaml" in result.stderr, result.stderr
