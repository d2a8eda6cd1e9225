"""The operator image (Dockerfile): a digest-pinned base, runtime dependencies only, not root.

No Docker engine runs here, so the image itself is not built. What can be checked without one is:
the Dockerfile's text (every stage from a pinned digest, a numeric non-root user that the
manifests run as), the build context (.dockerignore admits the operator's sources only), and the
build stage's own install command, run as written against a copy of that context, which must give
a virtualenv with the operator's runtime closure and none of the test extras.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DIGEST = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")
# Test extras (pyproject's [test]) and build tools: none of these may reach the image's virtualenv.
NOT_AT_RUN_TIME = ("pytest", "mypy", "ruff", "import-linter", "cel-python", "setuptools", "pip")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _args() -> dict[str, str]:
    return dict(rest.split("=", 1) for keyword, rest in _instructions() if keyword == "ARG" and "=" in rest)


def _stages() -> list[str]:
    """Each FROM's image reference, with ${ARG}s replaced by their defaults."""
    args = _args()
    refs = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            ref = rest.split()[0]
            refs.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref))
    return refs


def test_every_stage_starts_from_a_digest_pinned_base() -> None:
    stages = _stages()
    assert len(stages) >= 2, f"a multi-stage build is expected, found {stages}"
    for ref in stages:
        assert DIGEST.match(ref), f"FROM {ref}: pin the base by digest (name:tag@sha256:<64 hex>)"


def test_the_runtime_stage_is_not_root_and_matches_the_manifests() -> None:
    users = [rest for keyword, rest in _instructions() if keyword == "USER"]
    assert users, "the image must name a USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: numeric and not root, so runAsNonRoot can check it"
    assert gid.isdigit() and int(gid) != 0, f"USER {users[-1]}: a numeric group that is not root"
    for manifest in ("deploy/operator.yaml", "deploy/operator-clusterwide.yaml"):
        deployment = next(d for d in yaml.safe_load_all((REPO / manifest).read_text()) if d["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, manifest
        assert pod["securityContext"]["runAsUser"] == int(uid), f"{manifest} runs as another user than the image"
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, manifest


def _sent(path: str, rules: list[str]) -> bool:
    """Whether .dockerignore lets ``path`` into the context: the last rule that matches decides."""
    parts = path.split("/")
    included = True
    for rule in rules:
        pattern, admit = (rule[1:], True) if rule.startswith("!") else (rule, False)
        # A rule matches a path or any folder above it; `**/name` matches a name at any depth.
        if pattern.startswith("**/"):
            candidates, pattern = parts, pattern.removeprefix("**/")
        else:
            candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(c, pattern) for c in candidates):
            included = admit
    return included


def _context_files() -> list[str]:
    """The files `docker build .` would send from this folder, by .dockerignore's rules."""
    rules = [r.strip() for r in (REPO / ".dockerignore").read_text().splitlines() if r.strip() and r[0] != "#"]
    admitted = [r[1:] for r in rules if r.startswith("!")]
    sent = []
    for root, folders, files in os.walk(REPO):
        here = Path(root).relative_to(REPO).as_posix()
        prefix = "" if here == "." else f"{here}/"
        # Descend only where something may be sent: an admitted folder, or one above an admitted path.
        folders[:] = [
            f for f in folders
            if _sent(prefix + f, rules) or any(a.startswith(prefix + f + "/") for a in admitted)
        ]  # fmt: skip
        sent += [prefix + f for f in files if _sent(prefix + f, rules)]
    return sorted(sent)


def test_the_build_context_holds_the_operator_sources_only() -> None:
    sent = _context_files()
    assert "pyproject.toml" in sent and any(p.startswith("operator/secretrotation/") for p in sent), sent[:10]
    strays = [p for p in sent if p.split("/")[0] not in ("pyproject.toml", "README.md", "operator")]
    assert not strays, f".dockerignore lets these into the image's build context: {strays}"


@pytest.mark.timeout(600)
def test_the_build_stage_installs_the_runtime_closure_and_nothing_else(tmp_path: Path) -> None:
    base_python = re.search(r"python:(\d+\.\d+)", _stages()[0])
    assert base_python, _stages()[0]
    if base_python.group(1) != f"{sys.version_info.major}.{sys.version_info.minor}":
        pytest.skip(f"the base runs Python {base_python.group(1)}; this interpreter is another minor")
    context = tmp_path / "src"
    for path in _context_files():
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, context / path)
    prefix = tmp_path / "opt"
    (build_run,) = [rest for keyword, rest in _instructions() if keyword == "RUN"]
    # The build stage's command as written; only its target folder and `pip` are this machine's.
    script = build_run.replace("/opt/secretrotation", str(prefix))
    script = script.replace("pip --python", f"{sys.executable} -m pip --python")
    script = script.replace("python -m venv", f"{sys.executable} -m venv")
    result = subprocess.run(
        ["sh", "-c", script], cwd=context, capture_output=True, text=True, timeout=540,
        env={"PATH": "/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": str(Path.home())},
    )  # fmt: skip
    assert result.returncode == 0, f"the build stage's RUN failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    site = next((prefix / "lib").glob("python3.*/site-packages"))
    installed = {d.metadata["Name"].lower().replace("_", "-") for d in distributions(path=[str(site)])}
    for needed in ("secretrotation", "kopf", "kubernetes", "prometheus-client"):
        assert needed in installed, f"{needed} is missing from the image's virtualenv: {sorted(installed)}"
    leaked = sorted(installed & set(NOT_AT_RUN_TIME))
    assert not leaked, f"test extras or build tools reach the image: {leaked}"
    assert not (site / "secretrotation_dev").exists(), "dev tooling reached the image"
    cli = prefix / "bin" / "secretrotation"
    usage = subprocess.run([cli, "run", "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and "--namespace" in usage.stdout, usage.stderr[-2000:]
