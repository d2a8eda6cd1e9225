"""Run the real operator (``python -m secretrotation run``) as a process, for tests.

A process, not an in-process runner, so tests can SIGKILL it and restart it
exactly as a node failure would, and read its logs as an SRE would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, condition

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "rotation.sre.dev", "v1alpha1", "secretrotations"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_crd(kube: Kube) -> None:
    crd = yaml.safe_load((REPO / "crds/secretrotation.yaml").read_text())
    try:
        kube.extensions.create_custom_resource_definition(crd)
    except ApiException as error:
        if error.status != 409:
            raise
        current = kube.extensions.read_custom_resource_definition(crd["metadata"]["name"])
        crd["metadata"]["resourceVersion"] = current.metadata.resource_version
        kube.extensions.replace_custom_resource_definition(crd["metadata"]["name"], crd)
    kube.wait_one(
        kube.extensions.list_custom_resource_definition,
        crd["metadata"]["name"],
        lambda c: (condition(c, "Established") or {}).get("status") == "True",
        what="CRD established",
    )


def apply_cluster_role(kube: Kube) -> None:
    role = yaml.safe_load((REPO / "deploy/rbac.yaml").read_text())
    try:
        kube.rbac.create_cluster_role(role)
    except ApiException as error:
        if error.status != 409:
            raise
        kube.rbac.replace_cluster_role(role["metadata"]["name"], role)


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        namespace: str | None,
        log_path: Path,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace  # watched by name; None: the scope is in extra_args (--all-namespaces)
        self.log_path = log_path
        self.extra_args = tuple(extra_args)  # after the usual flags, e.g. --leader-elect
        self.env = dict(env or {})  # added to the environment, e.g. POD_NAME
        self.metrics_port = 0
        self.liveness_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.metrics_port, self.liveness_port = _free_port(), _free_port()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        scope = ["--namespace", self.namespace] if self.namespace else []
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "secretrotation", "run", *scope,
                 "--metrics-port", str(self.metrics_port), "--liveness-port", str(self.liveness_port),
                 "--bind", "127.0.0.1", "--log-format", "json", "--verbose", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the operator exited with {self.process.returncode}:\n{self.logs()[-3000:]}")
            if self._healthy():
                return
            time.sleep(0.1)
        raise AssertionError(f"the operator did not become live within {timeout}s:\n{self.logs()[-3000:]}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text


def rotation(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SecretRotation", "metadata": {"name": name}, "spec": spec}
