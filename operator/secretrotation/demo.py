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
from pathlib import Path

from secretrotation.devcluster import __main__ as devcluster
from secretrotation.devcluster import binaries

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

        _say("Applying the example SecretRotation")
        self.kubectl_run("apply", "-f", str(REPO / "deploy/examples/db-credentials-rotation.yaml"))
        self.kubectl_run("-n", "shop", "get", "srot,deployments,statefulsets,daemonsets")


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
