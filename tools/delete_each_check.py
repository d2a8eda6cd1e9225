"""Delete each named check from its rule chain, once, and run the unit suite: it must fail every time.

    python tools/delete_each_check.py            (or: make check-rules)

Works on a scratch copy of the repository, never on the checkout itself. The tests that
only pin a chain's order are left out, so each deletion has to be caught by a test of
behaviour. The untouched copy must pass first, or no deletion could be judged. Exits 1,
naming the check, if any deletion goes unnoticed.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "operator" / "secretrotation" / "core" / "rules"
ORDER_PINS = "not chain_asks"


def chains() -> list[tuple[Path, str]]:
    """(module, check name) for every element of every ``*CHAIN`` tuple in the rule modules."""
    found = []
    for module in sorted(RULES.glob("*.py")):
        for node in ast.parse(module.read_text()).body:
            target = (
                node.target
                if isinstance(node, ast.AnnAssign)
                else (node.targets[0] if isinstance(node, ast.Assign) else None)
            )
            if isinstance(target, ast.Name) and target.id.endswith("CHAIN") and isinstance(node.value, ast.Tuple):
                found += [(module, element.id) for element in node.value.elts if isinstance(element, ast.Name)]
    return found


def _copy(scratch: str) -> Path:
    copy = Path(scratch) / "repo"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".git", ".venv", ".cluster", "__pycache__"))
    return copy


def _unit_suite(copy: Path) -> subprocess.CompletedProcess[str]:
    """The unit suite in ``copy``, without the order pins and the packaging tests (they build, they judge no rule)."""
    env = {**os.environ, "PYTHONPATH": f"{copy}/operator:{copy}/dev:{copy}/tests"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/unit", "-q", "-x", "-p", "no:cacheprovider",
         "--ignore", "tests/unit/test_packaging.py", "--ignore", "tests/unit/test_image.py", "-k", ORDER_PINS],
        cwd=copy, env=env, capture_output=True, text=True,
    )  # fmt: skip


def _failures(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in result.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))] or [result.stdout[-2000:]]


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        baseline = _unit_suite(_copy(scratch))
    if baseline.returncode:
        # A suite that fails untouched would "catch" every deletion and prove nothing.
        print(f"the unit suite fails on an untouched copy: {_failures(baseline)[0]}", file=sys.stderr)
        return 1
    missed = []
    for module, check in chains():
        with tempfile.TemporaryDirectory() as scratch:
            copy = _copy(scratch)
            mutated = copy / module.relative_to(REPO)
            text = mutated.read_text()
            line = f"    {check},\n"
            assert text.count(line) == 1, f"{check} is not one line of its chain in {module.name}"
            mutated.write_text(text.replace(line, "", 1))
            result = _unit_suite(copy)
            verdict = f"caught by {_failures(result)[0]}" if result.returncode else "NOT CAUGHT"
            print(f"{module.stem}.{check}: {verdict}")
            if result.returncode == 0:
                missed.append(check)
    if missed:
        print(f"deleting these checks breaks no test: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
