"""The operator behind a faulty network: a rotation still happens exactly once.

The operator talks to the API server through a ``FaultProxy`` that answers 10% of
its requests with 500, 503 or 429, drops the answer to 3% of its writes after they
succeeded (so it cannot know whether they did), and cuts every watch after 2 to 8
seconds. Reads are retried, every write is idempotent, watches are re-established:
the rotation must end Ready (``Rotated``) with the revision raised by exactly one,
one new version, every workload switched exactly once, and the old version kept or
collected as ``retain`` says, all under the ``InvariantChecker``. Each rotation is
requested once every watch cut has begun, so it runs on re-established watches. The first
test runs twice: with those faults, and with the answers to its first two writes lost for
certain and a quarter of the others (at 3% a rotation's dozen writes often lose none). The
second SIGKILLs the operator mid-rotation, under the same faults.

Faults are seeded: ``SECRETROTATION_FAULT_SEED`` replays the proxy's draws (which request
draws which still depends on timing), and ``SECRETROTATION_CHAOS_SEED`` the kill times.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from datetime import UTC, datetime

import pytest

from kubetest import Kube, Obj, condition, container, deployment, eventually, raw, secret
from kubetest.invariants import InvariantChecker
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess
from kubetest.proxy import CHAOS
from kubetest.rotations import (
    at_revision,
    create,
    db_rotation,
    request_rotation,
    secret_names,
    template_secrets,
    wait_rotation,
)
from secretrotation.core import names, references
from secretrotation_dev.faultproxy import FaultProxy, Faults

pytestmark = pytest.mark.integration
DEPLOYMENTS = ("api", "web")
FAULTY_TIMEOUT = 100  # seconds for one rotation under faults (fault-free it takes about 5)
KILLS = 3
MAX_KILL_DELAY_SECONDS = 1.5
LOSSY_WRITE_RATE = 0.25
CERTAIN_LOSSES = 2


# -- helpers ------------------------------------------------------------------------------------


def two_deployments(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    env = [
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db", "key": "username"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    ]
    for name in DEPLOYMENTS:
        kube.apps.create_namespaced_deployment(
            namespace, deployment(name, {"containers": [container(env=env)]}, replicas=2)
        )


def generations(kube: Kube, namespace: str) -> dict[str, int]:
    return {
        name: raw(kube.apps.read_namespaced_deployment, name, namespace)["metadata"]["generation"]
        for name in DEPLOYMENTS
    }


def read_rotation(kube: Kube, namespace: str) -> Obj:
    return dict(raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, "db"))


def rotated_once(kube: Kube, namespace: str, retain: int) -> dict[str, int]:
    """Revision 1, fault-free (so a previous version exists to keep or collect); the generations then."""
    two_deployments(kube, namespace)
    create(kube, namespace, db_rotation(retain=retain))
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")
    return generations(kube, namespace)


def versions(kube: Kube, namespace: str) -> set[str]:
    """Every Secret this rotation labels as one of its versions, whatever its name."""
    selector = f"{names.ROTATION_LABEL}=db"
    items = raw(kube.core.list_namespaced_secret, namespace, label_selector=selector)["items"]
    return {s["metadata"]["name"] for s in items}


def complaints(operator: OperatorProcess) -> list[str]:
    """The operator's warnings and errors (JSON log lines), and anything it printed that is not JSON."""
    found = []
    for line in operator.logs().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            found.append(line)
            continue
        if isinstance(record, dict) and record.get("severity") in ("warn", "error", "fatal"):
            found.append(f"{record.get('timestamp', '')} {record['severity']}: {record.get('message', '')}")
    return found


def describe(proxy: FaultProxy, operator: OperatorProcess) -> str:
    found = complaints(operator)
    faults = [
        f"{datetime.fromtimestamp(at, UTC):%H:%M:%S.%f} {fault}: {key.method} {key.path} -> {key.status}"
        for at, fault, key in proxy.fault_log()
        if fault != "watch_cut"
    ]
    return (
        f"faults injected: {dict(proxy.injected())}; the last errors and lost writes (UTC):\n"
        + "\n".join(faults[-20:])
        + f"\noperator warnings and errors ({len(found)}), the last ones:\n"
        + "\n".join(found[-20:])
    )


def assert_rotated_exactly_once(
    kube: Kube, namespace: str, before: dict[str, int], proxy: FaultProxy, operator: OperatorProcess, *, retain: int
) -> None:
    try:
        done = wait_rotation(kube, namespace, "db", at_revision(2), "revision 2 Ready", timeout=FAULTY_TIMEOUT)
    except AssertionError as error:
        error.add_note(describe(proxy, operator))
        raise
    proxy.set_faults(Faults())  # the checks below read through the admin client; the operator may settle
    status = done["status"]
    ready = condition(done, "Ready") or {}
    assert ready.get("reason") == "Rotated", ready
    assert status["currentSecret"] == "db-v2"
    assert status.get("highestRevision", 2) == 2, "no version name was skipped or used twice"
    assert status["lastHandledRequest"] == "second"
    assert "pendingDeletion" not in status, status["pendingDeletion"]
    kept = ["db-v1"] if retain else []
    assert status.get("retainedSecrets", []) == kept
    assert versions(kube, namespace) == {"db-v2", *kept}, "exactly one new version, the old one kept or collected"
    assert secret_names(kube, namespace) == {"db", "db-v2", *kept}, "the adopted base is kept, nothing leaked"
    for name in DEPLOYMENTS:
        assert template_secrets(kube, namespace, "Deployment", name) == {"db-v2"}, f"Deployment {name} not on db-v2"
    switches = {name: generation - before[name] for name, generation in generations(kube, namespace).items()}
    assert switches == dict.fromkeys(DEPLOYMENTS, 1), "each pod template is switched exactly once"
    kube.wait(
        kube.core.list_namespaced_pod,
        lambda pods: (
            bool(pods)
            and all(references.referenced_secrets(p["spec"]) & {"db", "db-v1", "db-v2"} == {"db-v2"} for p in pods)
        ),
        namespace=namespace,
        what="every pod on db-v2",
        timeout=30,
    )
    print(f"faults injected: {dict(proxy.injected())}")


def started_or_done(obj: Obj) -> bool:
    status = obj.get("status") or {}
    return status.get("phase") not in (None, "Idle") or status.get("revision") == 2


def faults_on(proxy: FaultProxy, faults: Faults) -> None:
    """Turn ``faults`` on and wait for the first watch cut: the rotation then runs on re-established watches."""
    proxy.set_faults(faults)
    proxy.reset()
    assert faults.watch_cut is not None
    eventually(lambda: proxy.injected()["watch_cut"] > 0, timeout=faults.watch_cut[1] + 5, what="a first watch cut")


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "certain_losses"),
    [(CHAOS, 0), (dataclasses.replace(CHAOS, lost_write_rate=LOSSY_WRITE_RATE), CERTAIN_LOSSES)],
    ids=["chaos", "lossy-writes"],
)
def test_a_rotation_under_api_faults_completes_exactly_once(
    kube: Kube,
    namespace: str,
    proxied_operator: tuple[OperatorProcess, FaultProxy],
    faults: Faults,
    certain_losses: int,
) -> None:
    """At 3% a rotation's dozen writes often lose no answer at all: the second run loses its first
    writes' answers for certain (creating the version, the status that records it), then a quarter."""
    operator, proxy = proxied_operator
    with InvariantChecker(kube, namespace):
        before = rotated_once(kube, namespace, retain=1)
        faults_on(proxy, faults)
        proxy.lose_next_writes(certain_losses)

        request_rotation(kube, namespace, "db", "second")

        assert_rotated_exactly_once(kube, namespace, before, proxy, operator, retain=1)
    assert proxy.injected()["lost_write"] >= certain_losses
    print(f"requests under faults: {proxy.non_watch_total()} non-watch; {proxy.summary()}")


def test_a_rotation_under_api_faults_and_sigkills_completes_exactly_once(
    kube: Kube, namespace: str, proxied_operator: tuple[OperatorProcess, FaultProxy]
) -> None:
    operator, proxy = proxied_operator
    seed = int(os.environ.get("SECRETROTATION_CHAOS_SEED") or random.randrange(2**32))
    print(f"SECRETROTATION_CHAOS_SEED={seed}")
    chaos = random.Random(seed)
    with InvariantChecker(kube, namespace):
        before = rotated_once(kube, namespace, retain=0)
        faults_on(proxy, CHAOS)

        request_rotation(kube, namespace, "db", "second")
        wait_rotation(kube, namespace, "db", started_or_done, "the rotation started", timeout=FAULTY_TIMEOUT)
        for _ in range(KILLS):
            time.sleep(chaos.uniform(0, MAX_KILL_DELAY_SECONDS))
            print(f"killed in phase {(read_rotation(kube, namespace).get('status') or {}).get('phase')}")
            operator.kill()
            operator.start(timeout=60)  # a start under faults: discovery and the first lists are retried

        assert_rotated_exactly_once(kube, namespace, before, proxy, operator, retain=0)
