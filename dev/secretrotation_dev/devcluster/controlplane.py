"""A real Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and the simulated kubelet.

Everything lives in one state folder (``.cluster/`` for ``make cluster-up``, a
temporary folder for tests): certificates, etcd data, logs, the kubeconfig and
a ``pids`` file. Processes are started in the order a real cluster needs and
are stopped in reverse. When ``die_with_parent`` is set (tests), every child
asks the kernel to SIGKILL it when the starting process dies, so an
interrupted test run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from secretrotation_dev.devcluster.binaries import Binaries

SERVICE_CIDR = "10.0.0.0/24"  # only written into objects; nothing is ever sent there
STOP_TIMEOUT_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """The control plane did not start; the message names the log to read."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(pki: Path) -> None:
    """A CA, an apiserver serving certificate for loopback, and the service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-keyout",
        str(pki / "ca.key"),
        "-out",
        str(pki / "ca.crt"),
        "-subj",
        "/CN=secretrotation-local-ca",
    )
    (pki / "san.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(pki / "apiserver.key"),
        "-out",
        str(pki / "apiserver.csr"),
        "-subj",
        "/CN=kube-apiserver",
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(pki / "apiserver.csr"),
        "-CA",
        str(pki / "ca.crt"),
        "-CAkey",
        str(pki / "ca.key"),
        "-CAcreateserial",
        "-days",
        "3650",
        "-out",
        str(pki / "apiserver.crt"),
        "-extfile",
        str(pki / "san.cnf"),
    )
    _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def kubeconfig_text(server: str, ca_file: Path, token: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "local",
    }
    return json.dumps(config, indent=2) + "\n"


class ControlPlane:
    """Start, check and stop one local cluster in ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        binaries: Binaries,
        *,
        nodes: int = 1,
        readiness_delay_seconds: float = 0.5,
        die_with_parent: bool = True,
        controller_manager_args: Sequence[str] = (),
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.binaries = binaries
        self.nodes = nodes
        self.readiness_delay_seconds = readiness_delay_seconds
        self.die_with_parent = die_with_parent
        self.controller_manager_args = tuple(controller_manager_args)  # added to the usual flags
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.pki = self.state_dir / "pki"
        self.logs = self.state_dir / "logs"
        self.pids_file = self.state_dir / "pids"
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._log_files: list[IO[bytes]] = []
        self.server = ""
        self._token = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_seconds: float = 180.0) -> None:
        """Start every component and return once the API is ready and a node is schedulable."""
        deadline = time.monotonic() + timeout_seconds
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        if not (self.pki / "sa.key").exists():
            make_pki(self.pki)
        self._token = secrets.token_hex(24)
        tokens = self.pki / "tokens.csv"
        tokens.write_text(f'{self._token},admin,admin-uid,"system:masters"\n')
        tokens.chmod(0o600)
        try:
            etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
            self.server = f"https://127.0.0.1:{api_port}"
            self.kubeconfig.write_text(kubeconfig_text(self.server, self.pki / "ca.crt", self._token))
            self.kubeconfig.chmod(0o600)
            self._spawn("etcd", self._etcd_args(etcd_port, peer_port))
            self._wait(lambda: self._http_ok(f"http://127.0.0.1:{etcd_port}/health"), deadline, "etcd")
            self._spawn("kube-apiserver", self._apiserver_args(etcd_port, api_port, tokens))
            self._wait(lambda: self._api_ok("/readyz"), deadline, "kube-apiserver")
            if self.binaries.kube_controller_manager:
                self._spawn("kube-controller-manager", self._controller_manager_args())
            if self.binaries.kube_scheduler:
                self._spawn("kube-scheduler", self._scheduler_args())
            self._spawn("kubelet", self._kubelet_args())
            self._wait(self._node_schedulable, deadline, "kubelet")
            if self.binaries.kube_controller_manager:
                self._wait(self._default_service_account_exists, deadline, "kube-controller-manager")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every component, newest first: SIGTERM, then SIGKILL after a grace period."""
        for _name, process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
        for _name, process in reversed(self._processes):
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        for log in self._log_files:
            log.close()
        self._log_files.clear()
        with contextlib.suppress(FileNotFoundError):
            self.pids_file.unlink()

    def restart(self, name: str) -> None:
        """Stop one component and start it again with the same flags (for example to rerun a controller's start-up)."""
        index, (_, process) = next((i, p) for i, p in enumerate(self._processes) if p[0] == name)
        argv = [str(a) for a in process.args]  # type: ignore[union-attr]
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        del self._processes[index]
        self._spawn(name, argv)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- processes --------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log_files.append(log)
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
            start_new_session=not self.die_with_parent,
        )
        self._processes.append((name, process))
        self.pids_file.write_text("".join(f"{n} {p.pid}\n" for n, p in self._processes))

    def _etcd_args(self, port: int, peer_port: int) -> list[str]:
        return [
            str(self.binaries.etcd),
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{port}",
            f"--advertise-client-urls=http://127.0.0.1:{port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
        ]

    def _apiserver_args(self, etcd_port: int, api_port: int, tokens: Path) -> list[str]:
        pki = self.pki
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--cert-dir={self.state_dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={self.kubeconfig}",
            "--controllers=*,-nodelifecycle",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            "--leader-elect=false",
            "--secure-port=0",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            *self._controller_gates(),
            *self.controller_manager_args,
        ]

    def _controller_gates(self) -> list[str]:
        """From 1.36, the StaleControllerConsistency gates (beta, on by default) make a controller whose
        cache lags its own last write fail its sync and requeue with exponential backoff. On two shared
        cores that lag is routine, and StatefulSet syncs were seen requeued again and again.
        They guard the controllers' caches, which the operator neither reads nor relies on: turned off
        here so a test's waits measure the operator, not the backoff (real clusters keep them on)."""
        minor = int("".join(ch for ch in str(self.api_get("/version")["minor"]) if ch.isdigit()))
        if minor < 36:
            return []
        kinds = ("DaemonSet", "Job", "ReplicaSet", "StatefulSet") + (("HPA",) if minor >= 37 else ())
        return ["--feature-gates=" + ",".join(f"StaleControllerConsistency{kind}=false" for kind in kinds)]

    def _scheduler_args(self) -> list[str]:
        return [
            str(self.binaries.kube_scheduler),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
        ]

    def _kubelet_args(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "secretrotation_dev.devcluster.kubelet",
            f"--kubeconfig={self.kubeconfig}",
            f"--nodes={self.nodes}",
            f"--readiness-delay={self.readiness_delay_seconds}",
        ]

    # -- readiness ---------------------------------------------------------------------------

    def _wait(self, check: Callable[[], bool], deadline: float, component: str) -> None:
        while time.monotonic() < deadline:
            for name, process in self._processes:
                if process.poll() is not None:
                    raise ControlPlaneError(
                        f"{name} exited with code {process.returncode}; see {self.logs / (name + '.log')}"
                    )
            if check():
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"{component} was not ready in time; see {self.logs / (component + '.log')}")

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki / "ca.crt"))

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _api_read(self, path: str) -> bytes:
        request = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self._token}"})
        with urllib.request.urlopen(request, timeout=5, context=self._ssl_context()) as response:
            body: bytes = response.read()
            return body

    def api_get(self, path: str) -> Any:
        """GET a path of the API as admin and decode the JSON answer."""
        return json.loads(self._api_read(path))

    def _api_ok(self, path: str) -> bool:
        try:
            return self._api_read(path).strip() == b"ok"
        except (urllib.error.URLError, OSError):
            return False

    def _node_schedulable(self) -> bool:
        try:
            nodes = self.api_get("/api/v1/nodes")["items"]
        except (urllib.error.URLError, OSError):
            return False
        ready = [n for n in nodes if _node_is_schedulable(n)]
        return len(ready) >= self.nodes

    def _default_service_account_exists(self) -> bool:
        """The controllers run: the account and root CA every namespace gets are there."""
        try:
            self.api_get("/api/v1/namespaces/default/serviceaccounts/default")
            self.api_get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
        except (urllib.error.URLError, OSError):
            return False
        return True


def _node_is_schedulable(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    blocking = [t for t in node.get("spec", {}).get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
    return ready and not blocking and not node.get("spec", {}).get("unschedulable")
