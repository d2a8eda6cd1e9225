"""ARCHITECTURE.md names only files that exist, and the module size limit holds."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "secretrotation"
MAX_MODULE_LINES = 400


def test_every_file_architecture_md_names_exists() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:core|shell|adapters)/[\w/]*(?:\.py|/))`", text))
    assert named, "ARCHITECTURE.md names no files"
    missing = sorted(n for n in named if "*" not in n and not (PACKAGE / n).exists())
    assert missing == [], f"ARCHITECTURE.md names files that do not exist: {missing}"


def test_every_module_of_the_operator_is_named_in_architecture_md() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text()
    modules = [
        p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")
    ]
    unnamed = [m for m in modules if m not in text and m.rsplit("/", 1)[-1] not in text]
    assert unnamed == [], f"modules ARCHITECTURE.md does not place: {unnamed}"


def test_no_module_of_the_operator_is_over_400_lines() -> None:
    long = {
        p.relative_to(PACKAGE).as_posix(): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_the_benchmarks_still_import() -> None:
    # make bench is not part of make test: without this, a rename breaks it silently.
    import importlib.util

    for path in sorted((REPO / "tests" / "bench").glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
