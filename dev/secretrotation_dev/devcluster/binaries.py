"""Find or build the control-plane binaries of the local cluster.

Two sources, in this order:

1. ``$KUBEBUILDER_ASSETS``: the controller-runtime envtest convention, a folder
   holding ``etcd`` and ``kube-apiserver`` and optionally
   ``kube-controller-manager``, ``kube-scheduler`` and ``kubectl``.
2. A user cache (``~/.cache/secretrotation/k8s-1.20.2/bin``), filled once from
   Debian: etcd from the ``etcd-server`` package, and the Kubernetes binaries
   built from bookworm's ``kubernetes`` source package with Debian's Go.

The build is slow (5 to 10 minutes on 2 cores), so it happens once and is
marked complete with a stamp file; an interrupted build starts over cleanly.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

K8S_VERSION = "1.20.2"
DEBIAN_SOURCE_VERSION = "1.20.5+really1.20.2-1.1+deb12u1"
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
BUILD_PACKAGES = (
    "golang-1.19-go",
    "rsync",
    "etcd-server",
    "golang-github-modern-go-reflect2-dev",
    "dpkg-dev",
    "make",
)
DEB_SRC_FILE = Path("/etc/apt/sources.list.d/secretrotation-deb-src.sources")
DEB_SRC_ENTRY = """\
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
REFLECT2_DEBIAN = Path("/usr/share/gocode/src/github.com/modern-go/reflect2")
# Kubernetes 1.20 builds only with the Go of its day: Debian's 1.19, not whatever `go` is on PATH.
DEBIAN_GO_BIN = Path("/usr/lib/go-1.19/bin")


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


def cache_dir() -> Path:
    base = os.environ.get("SECRETROTATION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "secretrotation"
    )
    return Path(base) / f"k8s-{K8S_VERSION}"


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
    bin_dir = cache_dir() / "bin"
    if not (cache_dir() / "complete").is_file():
        build(cache_dir())
    return from_folder(bin_dir)


def _run(argv: list[str], **kwargs: object) -> None:
    _progress("$ " + " ".join(argv))
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


def _apt_prerequisites() -> None:
    if os.geteuid() != 0:
        raise ProvisionError(
            "building the control plane installs Debian packages and needs root; "
            "run as root once, or set KUBEBUILDER_ASSETS to a folder of envtest binaries"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not DEB_SRC_FILE.exists():
        _progress(f"adding a deb-src entry for bookworm in {DEB_SRC_FILE}")
        DEB_SRC_FILE.write_text(DEB_SRC_ENTRY)
    _run(["apt-get", "update", "-q"], env=env)
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *BUILD_PACKAGES], env=env)


def _replace_reflect2(tree: Path) -> None:
    """Swap vendored reflect2 1.0.1 for Debian's 1.0.2.

    reflect2 1.0.1 reads Go runtime internals that changed in Go 1.18; the
    apiserver then dies with `fatal error: fault` in mapiterinit while serving
    CRDs. Only the .go files are replaced; files 1.0.2 no longer has are removed.
    """
    vendored = tree / "vendor/github.com/modern-go/reflect2"
    for old in vendored.glob("*.go"):
        old.unlink()
    for new in REFLECT2_DEBIAN.glob("*.go"):
        if not new.name.endswith("_test.go"):
            shutil.copy2(new, vendored / new.name)
    _progress(f"replaced vendored reflect2 with Debian's copy from {REFLECT2_DEBIAN}")


def build(target: Path) -> None:
    """Install build prerequisites, fetch the Debian source, build and cache the binaries."""
    _progress(f"building Kubernetes {K8S_VERSION} into {target} (once; about 5 to 10 minutes)")
    _apt_prerequisites()
    work = target / "work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "download").mkdir(parents=True)
    _run(
        ["apt-get", "source", "--download-only", f"kubernetes={DEBIAN_SOURCE_VERSION}"],
        cwd=work / "download",
    )
    tree = work / "gopath/src/k8s.io/kubernetes"
    tree.parent.mkdir(parents=True)
    dsc = next((work / "download").glob("kubernetes_*.dsc"))
    _run(["dpkg-source", "--no-check", "-x", str(dsc), str(tree)])
    _replace_reflect2(tree)
    env = dict(
        os.environ,
        PATH=f"{DEBIAN_GO_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        GOROOT=str(DEBIAN_GO_BIN.parent),
        GOTOOLCHAIN="local",
        GOPATH=str(work / "gopath"),
        GO111MODULE="off",
        CGO_ENABLED="0",
        GOFLAGS="",
        GOCACHE=str(work / "gocache"),
    )
    what = " ".join(f"cmd/{c}" for c in KUBE_COMMANDS)
    _run(["make", f"WHAT={what}"], cwd=tree, env=env)
    bin_dir = target / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    built = tree / "_output/local/bin/linux/amd64"
    if not built.is_dir():
        built = tree / "_output/bin"
    for command in KUBE_COMMANDS:
        shutil.copy2(built / command, bin_dir / command)
    etcd = shutil.which("etcd") or "/usr/bin/etcd"
    shutil.copy2(etcd, bin_dir / "etcd")
    (target / "complete").write_text(f"{DEBIAN_SOURCE_VERSION}\n")
    shutil.rmtree(work, ignore_errors=True)
    _progress(f"control-plane binaries ready in {bin_dir}")


if __name__ == "__main__":
    print(find())
