"""``make demo``: the product on the embedded control plane, step by step.

Brings up the local cluster, installs the CRD, deploys example consumers of a
Secret and an example SecretRotation, and shows what happens. Every command
it runs is printed, so the demo doubles as a tutorial. The cluster is stopped
at the end unless ``KEEP_CLUSTER=1`` is set.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from secretrotation.core import names
from secretrotation_dev.devcluster import __main__ as devcluster
from secretrotation_dev.devcluster import binaries

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".cluster"


def _say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


class Demo:
    def __init__(self) -> None:
        kubectl = binaries.find().kubectl
        if kubectl is None:
            raise SystemExit("the demo needs kubectl beside the control-plane binaries")
        self.kubectl = [str(kubectl), f"--kubeconfig={STATE_DIR / 'kubeconfig'}"]

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
        if devcluster.up(STATE_DIR, nodes=1, readiness_delay=0.5, timeout=300) != 0:
            raise SystemExit("the control plane did not start")
        self.kubectl_run("get", "nodes")

        _say("Installing the SecretRotation CRD")
        self.kubectl_run("apply", "-f", str(REPO / "crds"))
        self.kubectl_run("wait", "--for=condition=Established", "crd/secretrotations.rotation.sre.dev")

        _say("Deploying workloads that consume the Secret db-credentials")
        self.kubectl_run("apply", "-f", str(REPO / "deploy/examples/shop.yaml"))
        self.kubectl_run("-n", "shop", "rollout", "status", "deployment/api", "--timeout=120s")

        _say("Starting the operator (watching namespace shop)")
        print("$ secretrotation run --namespace shop", flush=True)
        operator = subprocess.Popen(
            [sys.executable, "-m", "secretrotation", "run", "--namespace", "shop", "--metrics-port", "0",
             "--liveness-port", "0"],
            env={**os.environ, "KUBECONFIG": str(STATE_DIR / "kubeconfig")},
            stdout=open(STATE_DIR / "logs" / "operator.log", "ab"),  # noqa: SIM115 - lives as long as the process
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            self.rotate()
        finally:
            operator.terminate()
            operator.wait(15)
        print(f"\nOperator log: {STATE_DIR / 'logs' / 'operator.log'}")

    def rotate(self) -> None:
        _say("Applying the example SecretRotation: rotation 1 adopts db-credentials")
        self.kubectl_run("apply", "-f", str(REPO / "deploy/examples/db-credentials-rotation.yaml"))
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
    try:
        Demo().run()
    finally:
        if keep:
            print(f"\nThe cluster keeps running: kubectl --kubeconfig {STATE_DIR / 'kubeconfig'} ...")
            print("Stop it with: make cluster-down")
        else:
            _say("Stopping the control plane (KEEP_CLUSTER=1 keeps it)")
            devcluster.down(STATE_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
