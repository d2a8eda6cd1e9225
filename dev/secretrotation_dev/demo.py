"""``make demo``: the product on the embedded control plane, step by step.

Brings up the local cluster, installs the CRD, deploys example consumers of a
Secret and an example SecretRotation, and shows what happens. Every command
it runs is printed, so the demo doubles as a tutorial. The cluster is stopped
at the end unless ``KEEP_CLUSTER=1`` is set.

The manifests (the CRD and the examples) are read from a checkout of the
repository: ``$SECRETROTATION_REPO`` when set, otherwise the working directory
or the nearest parent of it that holds them. Not from beside this file: an
installed (non-editable) copy of this package lives in site-packages, far from
any checkout. The cluster state goes to ``.cluster/`` in that checkout, the
folder ``make cluster-up`` and ``make cluster-down`` use.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from secretrotation.core import names
from secretrotation_dev.devcluster import __main__ as devcluster
from secretrotation_dev.devcluster import binaries

REPO_ENV = "SECRETROTATION_REPO"
STATE_FOLDER = ".cluster"  # in the checkout: the state folder of make cluster-up and cluster-down
# The files the demo reads, relative to the repository root; the first one marks the root.
REPO_FILES = (
    Path("crds/secretrotation.yaml"),
    Path("deploy/examples/shop.yaml"),
    Path("deploy/examples/db-credentials-rotation.yaml"),
)


def _missing(repo: Path) -> list[Path]:
    return [repo / name for name in REPO_FILES if not (repo / name).is_file()]


def find_repository(start: Path | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The checkout the demo reads its manifests from; SystemExit saying what to do when there is none.

    ``$SECRETROTATION_REPO`` when set (it must be a checkout), otherwise the
    nearest of ``start`` (the working directory) and its parents that holds
    ``crds/secretrotation.yaml``.
    """
    configured = environ.get(REPO_ENV)
    if configured:
        repo = Path(configured).expanduser().resolve()
        missing = _missing(repo)
        if missing:
            raise SystemExit(f"${REPO_ENV}={configured} is not a secretrotation checkout: {missing[0]} does not exist")
        return repo
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / REPO_FILES[0]).is_file():
            missing = _missing(candidate)
            if missing:
                raise SystemExit(f"{candidate} looks like a secretrotation checkout but lacks {missing[0]}")
            return candidate
    raise SystemExit(
        f"the demo reads its manifests from a secretrotation checkout, but neither {here} nor any parent "
        f"holds {REPO_FILES[0]}: run it from the checkout (make demo) or set {REPO_ENV} to the checkout"
    )


def _say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


class Demo:
    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.state_dir = repo / STATE_FOLDER
        kubectl = binaries.find().kubectl
        if kubectl is None:
            raise SystemExit("the demo needs kubectl beside the control-plane binaries")
        self.kubectl = [str(kubectl), f"--kubeconfig={self.state_dir / 'kubeconfig'}"]

    def kubectl_run(self, *args: str, check: bool = True) -> str:
        print("$ kubectl " + " ".join(shlex.quote(a) for a in args), flush=True)
        result = subprocess.run([*self.kubectl, *args], capture_output=True, text=True)
        output = result.stdout + result.stderr
        print(output.rstrip(), flush=True)
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl {args[0]} failed")
        return result.stdout

    def run(self) -> None:
        _say("Starting the local control plane (etcd, kube-apiserver, controllers, scheduler, simulated kubelet)")
        if devcluster.up(self.state_dir, nodes=1, readiness_delay=0.5, timeout=300) != 0:
            raise SystemExit("the control plane did not start")
        self.kubectl_run("get", "nodes")

        _say("Installing the SecretRotation CRD")
        self.kubectl_run("apply", "-f", str(self.repo / "crds"))
        self.kubectl_run("wait", "--for=condition=Established", "crd/secretrotations.rotation.sre.dev")

        _say("Deploying workloads that consume the Secret db-credentials")
        self.kubectl_run("apply", "-f", str(self.repo / "deploy/examples/shop.yaml"))
        self.kubectl_run("-n", "shop", "rollout", "status", "deployment/api", "--timeout=120s")

        _say("Starting the operator (watching namespace shop)")
        print("$ secretrotation run --namespace shop", flush=True)
        operator = subprocess.Popen(
            [sys.executable, "-m", "secretrotation", "run", "--namespace", "shop", "--metrics-port", "0",
             "--liveness-port", "0"],
            env={**os.environ, "KUBECONFIG": str(self.state_dir / "kubeconfig")},
            stdout=open(self.state_dir / "logs" / "operator.log", "ab"),  # noqa: SIM115 - lives as long as the process
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            self.rotate()
        finally:
            operator.terminate()
            operator.wait(15)
        print(f"\nOperator log: {self.state_dir / 'logs' / 'operator.log'}")

    def rotate(self) -> None:
        _say("Applying the example SecretRotation: rotation 1 adopts db-credentials")
        self.kubectl_run("apply", "-f", str(self.repo / "deploy/examples/db-credentials-rotation.yaml"))
        self.wait_for_revision(1)
        self.show()

        _say("Requesting a second rotation (annotation rotation.sre.dev/requested-at)")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.kubectl_run(
            "-n", "shop", "annotate", "--overwrite", "srot/db-credentials", f"{names.REQUESTED_AT_ANNOTATION}={now}"
        )
        self.wait_for_revision(2)
        self.show()

    def wait_for_revision(self, revision: int, timeout: float = 180) -> None:
        print(f"(waiting for revision {revision} to be verified and Ready)", flush=True)
        deadline = time.monotonic() + timeout
        query = ["-n", "shop", "get", "srot/db-credentials", "-o",
                 "jsonpath={.status.revision} {.status.conditions[?(@.type=='Ready')].status}"]  # fmt: skip
        while time.monotonic() < deadline:
            result = subprocess.run([*self.kubectl, *query], capture_output=True, text=True)
            if result.stdout.split() == [str(revision), "True"]:
                return
            time.sleep(1)
        self.kubectl_run("-n", "shop", "describe", "srot/db-credentials", check=False)
        raise SystemExit(f"revision {revision} did not become Ready in {timeout:.0f}s")

    def show(self) -> None:
        self.kubectl_run("-n", "shop", "get", "srot")
        self.kubectl_run("-n", "shop", "get", "secrets", "-l", "rotation.sre.dev/rotation=db-credentials",
                         "-L", "rotation.sre.dev/revision")  # fmt: skip
        template = (
            "{range .items[*]}{.kind}/{.metadata.name}: "
            "{.spec.template.spec.containers[*].env[*].valueFrom.secretKeyRef.name}"
            "{.spec.template.spec.volumes[*].secret.secretName}"
            "{.spec.template.spec.initContainers[*].envFrom[*].secretRef.name}{'\\n'}{end}"
        )
        self.kubectl_run("-n", "shop", "get", "deployments,statefulsets,daemonsets", "-o", f"jsonpath={template}")


def main() -> int:
    keep = os.environ.get("KEEP_CLUSTER") == "1"
    repo = find_repository()
    state_dir = repo / STATE_FOLDER
    try:
        Demo(repo).run()
    finally:
        if keep:
            print(f"\nThe cluster keeps running: kubectl --kubeconfig {state_dir / 'kubeconfig'} ...")
            print("Stop it with: make cluster-down")
        else:
            _say("Stopping the control plane (KEEP_CLUSTER=1 keeps it)")
            devcluster.down(state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
