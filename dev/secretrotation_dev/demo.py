"""``make demo``: the product on the embedded control plane, step by step.

Brings up the local cluster, installs the CRD, deploys example consumers of a
Secret and an example SecretRotation, and tells the whole story: a first
rotation adopting the base Secret, a dry run, a requested rotation waited on,
one that breaks the app and is rolled back, a collection blocked by a forgotten
pod and resumed once it is gone, and the history. Every command it runs is
printed, so the demo doubles as a tutorial. The cluster and the operator are
stopped at the end unless ``KEEP_CLUSTER=1`` is set.

The manifests (the CRD and the examples) are read from a checkout of the
repository: ``$SECRETROTATION_REPO`` when set, otherwise the working directory
or the nearest parent of it that holds them. Not from beside this file: an
installed (non-editable) copy of this package lives in site-packages, far from
any checkout. The cluster state goes to ``.cluster/`` in that checkout, the
folder ``make cluster-up`` and ``make cluster-down`` use.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from secretrotation_dev.devcluster import __main__ as devcluster
from secretrotation_dev.devcluster import binaries, podsim

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

    def srot(self, *args: str, check: bool = True) -> int:
        """``kubectl srot``: kubectl finds the plugin on PATH (the virtualenv's bin) and passes it KUBECONFIG."""
        print("$ kubectl srot " + " ".join(shlex.quote(a) for a in args), flush=True)
        env = {**os.environ, "KUBECONFIG": str(self.state_dir / "kubeconfig"),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
        result = subprocess.run(
            [self.kubectl[0], "srot", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        print(result.stdout.rstrip(), flush=True)
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl srot {args[0]} failed")
        return result.returncode

    def run(self, keep: bool) -> None:
        _say("Starting the local control plane (etcd, kube-apiserver, controllers, scheduler, simulated kubelet)")
        if devcluster.up(self.state_dir, nodes=1, readiness_delay=0.5, timeout=300) != 0:
            raise SystemExit("the control plane did not start")
        self.kubectl_run("version")

        _say("Installing the SecretRotation CRD")
        self.kubectl_run("apply", "-f", str(self.repo / "crds"))
        self.kubectl_run("wait", "--for=condition=Established", "crd/secretrotations.rotation.sre.dev")

        _say("Deploying workloads that consume the Secret db-credentials")
        self.kubectl_run("apply", "-f", str(self.repo / "deploy/examples/shop.yaml"))
        self.kubectl_run("-n", "shop", "rollout", "status", "deployment/api", "--timeout=120s")

        argv = [sys.executable, "-m", "secretrotation", "run", "--namespace", "shop",
                "--metrics-port", "0", "--liveness-port", "0"]  # fmt: skip
        log = self.state_dir / "logs" / "operator.log"
        _say("Starting the operator (watching namespace shop)")
        print(f"$ KUBECONFIG={self.state_dir / 'kubeconfig'} {shlex.join(argv)} >>{log} 2>&1 &", flush=True)
        operator = subprocess.Popen(
            argv,
            env={**os.environ, "KUBECONFIG": str(self.state_dir / "kubeconfig")},
            stdout=open(log, "ab"),  # noqa: SIM115 - lives as long as the process
            stderr=subprocess.STDOUT,
            start_new_session=keep,  # with KEEP_CLUSTER=1 it outlives the demo
        )  # fmt: skip
        try:
            self.story()
        finally:
            if keep:
                print(f"\nThe operator keeps running (pid {operator.pid}); its log: {log}")
                print(f"It was started as: KUBECONFIG={self.state_dir / 'kubeconfig'} {shlex.join(argv)}")
            else:
                operator.terminate()
                operator.wait(15)
                print(f"\nOperator log: {log}")

    def story(self) -> None:
        _say("1. The first rotation adopts db-credentials: its consumers move to db-credentials-v1")
        self.kubectl_run("apply", "-f", str(self.repo / "deploy/examples/db-credentials-rotation.yaml"))
        self.kubectl_run("-n", "shop", "wait", "srot/db-credentials", "--for=jsonpath={.status.revision}=1",
                         "--timeout=180s")  # fmt: skip
        self.kubectl_run("-n", "shop", "wait", "srot/db-credentials", "--for=condition=Ready", "--timeout=180s")
        self.show()

        _say("2. What would the next rotation do? A dry run: it reads, and changes nothing")
        self.srot("-n", "shop", "plan", "db-credentials")

        _say("3. A requested rotation, waited on until it is verified")
        self.srot("-n", "shop", "rotate", "db-credentials", "--wait", "--timeout", "3m")
        self.show()

        _say("4. A rotation that breaks the app: pods on db-credentials-v3 crash (a simulated bad credential)")
        fault = f"--from-literal={podsim.FAULTS_KEY}=- secret: db-credentials-v3\n  effect: CrashLoop\n"
        self.kubectl_run("-n", "shop", "create", "configmap", podsim.FAULTS_CONFIGMAP, fault)
        if self.srot("-n", "shop", "rotate", "db-credentials", "--wait", "--timeout", "3m", check=False) == 0:
            raise SystemExit("the broken rotation was promoted; it should have been rolled back")
        self.kubectl_run("-n", "shop", "wait", "--for=delete", "secret/db-credentials-v3", "--timeout=60s")
        print("(caught: every workload went back to db-credentials-v2, untouched, and v3 is gone)")
        self.show()
        self.kubectl_run("-n", "shop", "delete", "configmap", podsim.FAULTS_CONFIGMAP)

        _say("5. A forgotten pod still reads db-credentials-v1: its collection waits for it")
        self.kubectl_run("-n", "shop", "run", "debug-shell", "--image=registry.local/tools:1",
                         "--overrides", FORGOTTEN_POD, "--restart=Never")  # fmt: skip
        self.srot("-n", "shop", "rotate", "db-credentials", "--wait", "--timeout", "3m")
        self.kubectl_run("-n", "shop", "wait", "srot/db-credentials", "--for=condition=GarbageCollected=False",
                         "--timeout=60s")  # fmt: skip
        self.srot("-n", "shop", "status", "db-credentials")
        _say("   ... the pod goes, and collection resumes by itself")
        self.kubectl_run("-n", "shop", "delete", "pod", "debug-shell")
        self.kubectl_run("-n", "shop", "wait", "--for=delete", "secret/db-credentials-v1", "--timeout=60s")
        self.show()

        _say("6. The history of every rotation")
        self.srot("-n", "shop", "history", "db-credentials")

    def show(self) -> None:
        self.kubectl_run("-n", "shop", "get", "srot", "-o", "wide")
        self.kubectl_run("-n", "shop", "get", "secrets", "-l", "rotation.sre.dev/rotation=db-credentials",
                         "-L", "rotation.sre.dev/revision")  # fmt: skip
        template = (
            "{range .items[*]}{.kind}/{.metadata.name}: "
            "{.spec.template.spec.containers[*].env[*].valueFrom.secretKeyRef.name}"
            "{.spec.template.spec.volumes[*].secret.secretName}"
            "{.spec.template.spec.initContainers[*].envFrom[*].secretRef.name}{'\\n'}{end}"
        )
        self.kubectl_run("-n", "shop", "get", "deployments,statefulsets,daemonsets", "-o", f"jsonpath={template}")


# A pod someone started by hand from an old copy of the api's spec, and forgot.
FORGOTTEN_POD = json.dumps({"spec": {"containers": [{
    "name": "debug-shell", "image": "registry.local/tools:1",
    "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-credentials-v1", "key": "password"}}}],
}]}})  # fmt: skip


def main() -> int:
    keep = os.environ.get("KEEP_CLUSTER") == "1"
    repo = find_repository()
    state_dir = repo / STATE_FOLDER
    try:
        Demo(repo).run(keep)
    finally:
        if keep:
            print("\nThe cluster keeps running. To explore it:")
            print(f"  export KUBECONFIG={state_dir / 'kubeconfig'}")
            print(f"  export PATH={Path(sys.executable).parent}:$PATH   # kubectl srot, and kubectl itself:")
            print(f"  alias kubectl={binaries.find().kubectl}")
            print("To stop everything: the operator (kill, with the pid above), then make cluster-down")
        else:
            _say("Stopping the control plane (KEEP_CLUSTER=1 keeps it)")
            devcluster.down(state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
