"""Find or build the control-plane binaries of the local cluster.

Two sources, in this order:

1. ``$KUBEBUILDER_ASSETS``: the controller-runtime envtest convention, a folder
   holding ``etcd`` and ``kube-apiserver`` and optionally
   ``kube-controller-manager``, ``kube-scheduler`` and ``kubectl``.
2. A user cache (``~/.cache/secretrotation/kubernetes-1.37.2/bin``), filled once by
   building from Go modules: one small module per release in ``dev/gobuild/`` requires
   ``k8s.io/kubernetes`` and pins every ``k8s.io/*`` staging module to the matching
   ``v0.<minor>.<patch>`` (kubernetes/kubernetes#79384); etcd comes from
   ``go.etcd.io/etcd/server/v3``. Their ``go.sum`` files pin every byte.

Which release: ``$SECRETROTATION_KUBERNETES`` names a supported minor (``1.37``, the
default, or ``1.31``, the oldest supported). A cold build takes about 15 minutes per
release on 2 cores (modules downloaded once); it is marked complete with a stamp that
records the ``go.sum`` it was built from, so an interrupted or outdated build starts over.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

GOBUILD = Path(__file__).resolve().parents[2] / "gobuild"
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
# The newest patch of each supported minor that the Go module proxy serves in full.
RELEASES = {"1.37": "1.37.2", "1.31": "1.31.13"}
DEFAULT_MINOR = "1.37"
ETCD_VERSION = "3.6.16"
HELM_VERSION = "3.22.0"  # the newest v3 release the module proxy serves
MINOR_ENV = "SECRETROTATION_KUBERNETES"


class ProvisionError(RuntimeError):
    """The binaries could not be found or built; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Binaries:
    """Paths of the control-plane executables. Optional ones may be None."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None
    kube_scheduler: Path | None
    kubectl: Path | None


def selected_minor() -> str:
    minor = os.environ.get(MINOR_ENV) or DEFAULT_MINOR
    if minor not in RELEASES:
        raise ProvisionError(f"{MINOR_ENV}={minor!r} is not a supported minor; choose one of {', '.join(RELEASES)}")
    return minor


def cache_root() -> Path:
    base = os.environ.get("SECRETROTATION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "secretrotation"
    )
    return Path(base)


def cache_dir(minor: str | None = None) -> Path:
    return cache_root() / f"kubernetes-{RELEASES[minor or selected_minor()]}"


def _progress(message: str) -> None:
    print(f"[provision] {message}", file=sys.stderr, flush=True)


def _optional(folder: Path, name: str) -> Path | None:
    path = folder / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def from_folder(folder: Path) -> Binaries:
    """Binaries in one folder; etcd and kube-apiserver are required."""
    missing = [n for n in ("etcd", "kube-apiserver") if _optional(folder, n) is None]
    if missing:
        raise ProvisionError(f"{folder} lacks required executables: {', '.join(missing)}")
    return Binaries(
        etcd=folder / "etcd",
        kube_apiserver=folder / "kube-apiserver",
        kube_controller_manager=_optional(folder, "kube-controller-manager"),
        kube_scheduler=_optional(folder, "kube-scheduler"),
        kubectl=_optional(folder, "kubectl"),
    )


def find() -> Binaries:
    """Binaries from $KUBEBUILDER_ASSETS or the cache, building the cache if needed."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        return from_folder(Path(assets))
    minor = selected_minor()
    target = cache_dir(minor)
    if not _is_current(target, _stamp(minor)):
        target.mkdir(parents=True, exist_ok=True)
        with open(target / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then look again
            if not _is_current(target, _stamp(minor)):
                build(minor, target)
    return from_folder(target / "bin")


def helm() -> Path:
    """The helm command, built once from ``dev/gobuild/helm-3`` like the control plane."""
    target = cache_root() / f"helm-{HELM_VERSION}"
    module = _module("helm-3")
    stamp = f"helm {HELM_VERSION}\ngo.sum sha256 {hashlib.sha256((module / 'go.sum').read_bytes()).hexdigest()}\n"
    if not _is_current(target, stamp):
        target.mkdir(parents=True, exist_ok=True)
        with open(target / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _is_current(target, stamp):
                (target / "complete").unlink(missing_ok=True)
                (target / "bin").mkdir(exist_ok=True)
                flags = f"-X helm.sh/helm/v3/internal/version.version=v{HELM_VERSION}"
                _go_build(module, "helm.sh/helm/v3/cmd/helm", target / "bin" / "helm", flags, _go_env())
                (target / "complete").write_text(stamp)
    return target / "bin" / "helm"


def _module(name: str) -> Path:
    return GOBUILD / name


def _stamp(minor: str) -> str:
    """What a complete build records: the versions and the go.sum files that pinned them."""
    sums = hashlib.sha256()
    for module in (_module(f"kubernetes-{minor}"), _module("etcd-3.6")):
        sums.update((module / "go.sum").read_bytes())
    return f"kubernetes {RELEASES[minor]}\netcd {ETCD_VERSION}\ngo.sum sha256 {sums.hexdigest()}\n"


def _is_current(target: Path, stamp: str) -> bool:
    try:
        return (target / "complete").read_text() == stamp
    except OSError:
        return False


def _go_env() -> dict[str, str]:
    if shutil.which("go") is None:
        raise ProvisionError(
            "building the control plane needs the go command (Go 1.26 or newer) on PATH; "
            "or set KUBEBUILDER_ASSETS to a folder of envtest binaries"
        )
    # -mod=readonly: go.sum must already pin every module; nothing is resolved anew.
    return dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false")


def _version_flags(version: str) -> str:
    """The -X flags Kubernetes' own build sets, so `kubectl version` reports the release."""
    major, minor, _ = version.split(".")
    values = {
        "gitVersion": f"v{version}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    packages = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    return " ".join(f"-X {package}.{key}={value}" for package in packages for key, value in values.items())


def _go_build(module: Path, package: str, output: Path, ldflags: str, env: dict[str, str]) -> None:
    argv = ["go", "build", "-trimpath", f"-ldflags=-s -w {ldflags}".strip(), "-o", str(output), package]
    _progress(f"$ (cd {module.relative_to(GOBUILD.parent)}) go build {package}")
    started = time.monotonic()
    subprocess.run(argv, check=True, cwd=module, env=env)
    _progress(f"built {output.name} in {time.monotonic() - started:.0f}s")


def build(minor: str, target: Path) -> None:
    """Build the release's binaries and etcd into ``target/bin``, then write the stamp."""
    version = RELEASES[minor]
    _progress(f"building Kubernetes {version} and etcd {ETCD_VERSION} into {target} (once; about 15 minutes)")
    env = _go_env()
    work = target / "building"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    module = _module(f"kubernetes-{minor}")
    flags = _version_flags(version)
    for command in KUBE_COMMANDS:
        _go_build(module, f"k8s.io/kubernetes/cmd/{command}", work / command, flags, env)
    _go_build(_module("etcd-3.6"), "go.etcd.io/etcd/server/v3", work / "etcd", "", env)
    (target / "complete").unlink(missing_ok=True)
    shutil.rmtree(target / "bin", ignore_errors=True)
    work.rename(target / "bin")
    (target / "complete").write_text(_stamp(minor))
    _progress(f"control-plane binaries ready in {target / 'bin'}")


if __name__ == "__main__":
    print(find())
