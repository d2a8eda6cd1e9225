"""High availability: two replicas with ``--leader-elect``, one Lease; only its holder acts.

Both replicas run as the operator's ServiceAccount, bound by the shipped RBAC only:
``deploy/rbac.yaml`` for the rotation, and ``deploy/rbac-leader-election.yaml`` for the
Lease, applied to the test's namespace (as an SRE applies it to the operator's own), so
that each test has its own Lease, named by the default ``--leader-election-id``. Every
Event a replica posts carries its name (``reportingInstance``, from ``POD_NAME``): that is
how a test tells which replica acted.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, raw, secret
from kubetest.operator import REPO, OperatorProcess
from kubetest.reach import bind_in_namespace
from kubetest.rotations import at_revision, create, db_rotation, request_rotation, wait_rotation
from secretrotation.shell import leader

pytestmark = pytest.mark.integration

LEASE = leader.DEFAULT_LEASE_NAME
TAKEOVER_BOUND = 15.0  # seconds from a leader's SIGKILL to the standby holding the Lease
LEADER_RBAC = "secretrotation-leader-election"


@pytest.fixture
def replicas(
    kube: Kube, namespace: str, operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[dict[str, OperatorProcess]]:
    """Two replicas, not started: ``a`` and ``b``, watching this namespace and keeping their Lease in it."""
    bind_in_namespace(kube, namespace)
    for doc in yaml.safe_load_all((REPO / "deploy/rbac-leader-election.yaml").read_text()):
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "Role":
            kube.rbac.create_namespaced_role(namespace, doc)
        else:
            kube.rbac.create_namespaced_role_binding(namespace, doc)
    processes = {
        name: OperatorProcess(
            operator_kubeconfig,
            namespace,
            tmp_path / f"replica-{name}.log",
            extra_args=["--leader-elect", "--leader-election-namespace", namespace],
            env={"POD_NAME": f"replica-{name}"},
        )
        for name in ("a", "b")
    }
    yield processes
    for process in processes.values():
        process.stop()


def holder(kube: Kube, namespace: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(kube.api).read_namespaced_lease(LEASE, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return lease.spec.holder_identity or None


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> float:
    """Poll every 0.1 s; the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - start


def start_leader_then_standby(kube: Kube, namespace: str, replicas: dict[str, OperatorProcess]) -> None:
    replicas["a"].start()
    wait_for(lambda: holder(kube, namespace) == "replica-a", "replica-a to hold the Lease", timeout=30)
    replicas["b"].start()  # returns once its standby liveness probe answers


def reporters(kube: Kube, namespace: str) -> set[str]:
    """The replicas that posted Events in the namespace."""
    events = raw(kube.core.list_namespaced_event, namespace)["items"]
    return {e.get("reportingInstance") for e in events if (e.get("source") or {}).get("component") == "secretrotation"}


def leader_gauge(process: OperatorProcess) -> float:
    for line in process.metrics().splitlines():
        if line.startswith("secretrotation_leader "):
            return float(line.split()[1])
    raise AssertionError("no secretrotation_leader gauge")


def test_one_replica_acts_and_the_standby_takes_over_within_15s_of_a_sigkill(
    kube: Kube, namespace: str, replicas: dict[str, OperatorProcess]
) -> None:
    a, b = replicas["a"], replicas["b"]
    start_leader_then_standby(kube, namespace, replicas)
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    create(kube, namespace, db_rotation())
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")

    assert reporters(kube, namespace) == {"replica-a"}
    assert (leader_gauge(a), leader_gauge(b)) == (1.0, 0.0)
    assert "starting the operator" in a.logs()
    assert "starting the operator" not in b.logs(), b.logs()[-2000:]
    assert holder(kube, namespace) == "replica-a"

    a.kill()
    killed = time.monotonic()
    request_rotation(kube, namespace, "db", "after-the-crash")
    wait_for(lambda: holder(kube, namespace) == "replica-b", "replica-b to take the Lease", timeout=30)
    took_lease = time.monotonic() - killed
    wait_rotation(kube, namespace, "db", at_revision(2), "revision 2 Ready, by replica-b", timeout=60)
    rotated = time.monotonic() - killed
    print(f"\ntakeover after SIGKILL: Lease {took_lease:.1f}s, requested rotation done {rotated:.1f}s")

    assert took_lease <= TAKEOVER_BOUND, f"replica-b took the Lease {took_lease:.1f}s after the SIGKILL"
    assert rotated <= TAKEOVER_BOUND + 5, f"the requested rotation finished {rotated:.1f}s after the SIGKILL"
    assert reporters(kube, namespace) == {"replica-a", "replica-b"}
    assert leader_gauge(b) == 1.0


def kopf_is_serving(process: OperatorProcess) -> bool:
    """kopf's own /healthz (its probes' results), not the standby's."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.liveness_port}/healthz", timeout=1) as response:
            return "rotations" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def test_a_stopped_leader_hands_the_lease_over_at_once(
    kube: Kube, namespace: str, replicas: dict[str, OperatorProcess]
) -> None:
    a, b = replicas["a"], replicas["b"]
    start_leader_then_standby(kube, namespace, replicas)
    wait_for(lambda: kopf_is_serving(a), "replica-a's operator to serve /healthz", timeout=30)
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    create(kube, namespace, db_rotation())
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")
    stopping = time.monotonic()
    a.stop()  # SIGTERM: kopf stops, then the Lease is released
    exited = time.monotonic() - stopping
    assert a.process is not None and a.process.returncode == 0, a.logs()[-3000:]
    took = wait_for(lambda: holder(kube, namespace) == "replica-b", "replica-b to take the Lease", timeout=15)
    print(f"\nhand-over after SIGTERM: the leader exited in {exited:.1f}s, replica-b held the Lease {took:.1f}s later")
    assert took <= leader.RETRY_PERIOD + 2
    assert exited + took < leader.LEASE_DURATION
    b.stop()
    assert b.process is not None and b.process.returncode == 0
    assert holder(kube, namespace) is None  # released again


def test_a_leader_stopped_while_its_operator_starts_still_releases_the_lease(
    kube: Kube, namespace: str, replicas: dict[str, OperatorProcess]
) -> None:
    # kopf handles signals only once its startup handlers have run (about a second): a SIGTERM
    # sent as the new leader starts is passed on to kopf, which stops, and the Lease is released.
    a, b = replicas["a"], replicas["b"]
    start_leader_then_standby(kube, namespace, replicas)
    a.kill()
    wait_for(lambda: "Leading: starting the operator." in b.logs(), "replica-b to lead", timeout=30)
    assert b.process is not None
    b.process.send_signal(signal.SIGTERM)
    assert b.process.wait(timeout=15) == 0, b.logs()[-3000:]
    assert holder(kube, namespace) is None
    assert "Signal SIGTERM is received" in b.logs() and "released the Lease" in b.logs()


def test_a_standby_stops_cleanly_and_never_acts(
    kube: Kube, namespace: str, replicas: dict[str, OperatorProcess]
) -> None:
    b = replicas["b"]
    start_leader_then_standby(kube, namespace, replicas)
    b.stop()
    assert b.process is not None and b.process.returncode == 0, b.logs()[-3000:]
    assert holder(kube, namespace) == "replica-a"
    assert "starting the operator" not in b.logs()


def test_a_leader_that_cannot_renew_exits_before_its_lease_expires(
    kube: Kube, namespace: str, replicas: dict[str, OperatorProcess]
) -> None:
    a = replicas["a"]
    a.start()
    wait_for(lambda: holder(kube, namespace) == "replica-a", "replica-a to hold the Lease", timeout=30)
    kube.rbac.delete_namespaced_role_binding(LEADER_RBAC, namespace)  # every renewal now answers 403
    revoked = time.monotonic()
    assert a.process is not None
    a.process.wait(timeout=leader.LEASE_DURATION + 5)
    exited = time.monotonic() - revoked
    print(f"\nleader exit after losing the right to renew: {exited:.1f}s")
    assert a.process.returncode == 1, a.logs()[-3000:]
    assert exited < leader.LEASE_DURATION
    assert "no renewal of the Lease" in a.logs() or "could not renew" in a.logs()


def test_a_leader_that_sees_another_holder_exits_at_once(
    kube: Kube, namespace: str, replicas: dict[str, OperatorProcess]
) -> None:
    a = replicas["a"]
    a.start()
    wait_for(lambda: holder(kube, namespace) == "replica-a", "replica-a to hold the Lease", timeout=30)
    coordination = client.CoordinationV1Api(kube.api)
    for _ in range(5):  # the leader renews every 2 s: retry on a conflict
        lease = coordination.read_namespaced_lease(LEASE, namespace)
        lease.spec.holder_identity = "someone-else"
        try:
            coordination.replace_namespaced_lease(LEASE, namespace, lease)
            break
        except ApiException as error:
            if error.status != 409:
                raise
    taken = time.monotonic()
    assert a.process is not None
    a.process.wait(timeout=leader.RETRY_PERIOD + 5)
    print(f"\nleader exit after reading another holder: {time.monotonic() - taken:.1f}s")
    assert a.process.returncode == 1
    assert "now held by 'someone-else'" in a.logs()
