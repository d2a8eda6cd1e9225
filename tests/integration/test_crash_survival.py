"""SIGKILL the operator mid-rotation: the status is the cursor, so a restart finishes the job exactly once.

Every test runs under the ``InvariantChecker``: whatever the moment of the
crash, no pod may reference a missing Secret, no version may change or be
deleted while referenced.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

import pytest

from kubetest import Kube, Obj, condition, raw, secret
from kubetest.invariants import InvariantChecker
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess
from kubetest.rotations import (
    WORKLOADS,
    at_revision,
    create,
    db_rotation,
    request_rotation,
    secret_names,
    shop_workloads,
    stalled_with,
    template_secrets,
    wait_rotation,
)
from secretrotation.core import references
from secretrotation_dev.devcluster import podsim
from secretrotation_dev.faultproxy import FaultProxy

pytestmark = pytest.mark.integration
# Slow enough to catch each phase from a watch, fast enough to keep the module short.
CRASH_VERIFY = {"timeout": "3m", "stableFor": "2s"}
RANDOM_KILLS = 3
MAX_KILL_DELAY_SECONDS = 1.5


# -- helpers ------------------------------------------------------------------------------------


def read_rotation(kube: Kube, namespace: str) -> Obj:
    return dict(raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, "db"))


def generations(kube: Kube, namespace: str) -> dict[str, int]:
    """Each workload's ``metadata.generation``: it rises once per change of its pod template."""
    read = {
        "Deployment": kube.apps.read_namespaced_deployment,
        "StatefulSet": kube.apps.read_namespaced_stateful_set,
        "DaemonSet": kube.apps.read_namespaced_daemon_set,
    }
    return {f"{kind} {name}": raw(read[kind], name, namespace)["metadata"]["generation"] for kind, name in WORKLOADS}


def rotated_once(kube: Kube, namespace: str) -> dict[str, int]:
    """The shop on revision 1 (so a previous version exists); the workloads' generations then."""
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    shop_workloads(kube, namespace)
    create(kube, namespace, db_rotation(verify=CRASH_VERIFY))
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")
    return generations(kube, namespace)


def in_phase(phase: str) -> Callable[[Obj], bool]:
    def check(obj: Obj) -> bool:
        return (obj.get("status") or {}).get("phase") == phase

    return check


def staged_version_exists(kube: Kube, namespace: str) -> None:
    kube.wait_one(kube.core.list_namespaced_secret, "db-v2", lambda _: True, namespace=namespace, what="staged")


def first_workload_switched(kube: Kube, namespace: str) -> None:
    """Targets are patched in (kind, name) order: the DaemonSet first."""
    kube.wait_one(
        kube.apps.list_namespaced_daemon_set,
        "agent",
        lambda ds: "db-v2" in references.referenced_secrets(references.pod_spec_of({**ds, "kind": "DaemonSet"})),
        namespace=namespace,
        what="switched to db-v2",
    )


Effect = Callable[[Kube, str], None]


def kill_in_phase(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    phase: str,
    effect: Effect | None = None,
    release: Callable[[], None] | None = None,
) -> None:
    """SIGKILL the operator the moment the status reports ``phase`` (and ``effect`` is seen), then restart it.

    The kill only proves something if the cursor was still at ``phase``: that is checked. ``release``
    lifts whatever held the operator there, before the restart.
    """
    wait_rotation(kube, namespace, "db", in_phase(phase), f"phase {phase}")
    if effect is not None:
        effect(kube, namespace)
    operator.kill()
    cursor = (read_rotation(kube, namespace).get("status") or {}).get("phase")
    assert cursor == phase, f"the operator left {phase} (now {cursor}) before it was killed: the kill proves nothing"
    if release is not None:
        release()
    operator.start()


def assert_rotated_exactly_once(kube: Kube, namespace: str, before: dict[str, int]) -> None:
    done = wait_rotation(kube, namespace, "db", at_revision(2), "revision 2 Ready", timeout=60)
    status = done["status"]
    assert status["currentSecret"] == "db-v2"
    assert status["retainedSecrets"] == ["db-v1"]
    assert status["lastHandledRequest"] == "second"
    assert "pendingDeletion" not in status, status["pendingDeletion"]
    assert secret_names(kube, namespace) == {"db", "db-v1", "db-v2"}, "retain 1, the base kept, nothing leaked"
    for kind, name in WORKLOADS:
        assert template_secrets(kube, namespace, kind, name) == {"db-v2"}, f"{kind} {name} not on db-v2"
    switches = {
        workload: generation - before[workload] for workload, generation in generations(kube, namespace).items()
    }
    assert switches == dict.fromkeys(before, 1), "each pod template is switched exactly once"


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "effect"),
    [
        ("Staging", None),
        ("Staging", staged_version_exists),  # created, but the cursor has not moved on
        ("Verifying", None),
        ("CollectingGarbage", None),
    ],
    ids=[
        "Staging",
        "Staging-db-v2-created",
        "Verifying",
        "CollectingGarbage",
    ],
)
def test_sigkill_at_every_phase_boundary_still_rotates_exactly_once(
    kube: Kube, namespace: str, operator: OperatorProcess, phase: str, effect: Effect | None
) -> None:
    with InvariantChecker(kube, namespace):
        before = rotated_once(kube, namespace)

        request_rotation(kube, namespace, "db", "second")
        kill_in_phase(kube, namespace, operator, phase, effect)

        assert_rotated_exactly_once(kube, namespace, before)


@pytest.mark.parametrize("effect", [None, first_workload_switched], ids=["RollingOut", "RollingOut-first-switched"])
def test_sigkill_while_switching_still_rotates_exactly_once(
    kube: Kube, namespace: str, proxied_operator: tuple[OperatorProcess, FaultProxy], effect: Effect | None
) -> None:
    """Killed with some targets switched and the cursor at RollingOut: the restart switches the rest, once.

    The switches of one step go out together, and the status follows at once; to kill the
    operator between them for sure, the proxy answers the StatefulSet's patch with 503 until
    the kill: the DaemonSet's switch lands, the step cannot finish, the cursor stays.
    """
    operator, proxy = proxied_operator
    with InvariantChecker(kube, namespace):
        before = rotated_once(kube, namespace)
        proxy.refuse("PATCH", r"/statefulsets/", 503, "held by the test until the kill")

        request_rotation(kube, namespace, "db", "second")
        kill_in_phase(kube, namespace, operator, "RollingOut", effect, release=proxy.stop_refusing)

        assert_rotated_exactly_once(kube, namespace, before)


def test_sigkill_at_random_points_still_rotates_exactly_once(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    seed = int(os.environ.get("SECRETROTATION_CHAOS_SEED") or random.randrange(2**32))
    print(f"SECRETROTATION_CHAOS_SEED={seed}")
    chaos = random.Random(seed)
    with InvariantChecker(kube, namespace):
        before = rotated_once(kube, namespace)

        request_rotation(kube, namespace, "db", "second")
        for _ in range(RANDOM_KILLS):
            time.sleep(chaos.uniform(0, MAX_KILL_DELAY_SECONDS))
            print(f"killed in phase {(read_rotation(kube, namespace).get('status') or {}).get('phase')}")
            operator.kill()
            operator.start()

        assert_rotated_exactly_once(kube, namespace, before)


def test_sigkill_during_rollback_still_rolls_back_exactly_once(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    with InvariantChecker(kube, namespace):
        before = rotated_once(kube, namespace)
        faults = f"- secret: db-v2\n  effect: {podsim.Effect.CRASH_LOOP.value}\n"
        kube.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
        )

        request_rotation(kube, namespace, "db", "second")
        kill_in_phase(kube, namespace, operator, "RollingBack")

        failed = wait_rotation(
            kube,
            namespace,
            "db",
            lambda r: stalled_with("VerificationFailed")(r) and "pendingDeletion" not in r["status"],
            "rolled back and db-v2 collected",
            timeout=60,
        )
        status = failed["status"]
        assert "CrashLoopBackOff" in condition(failed, "Stalled")["message"]
        assert status["revision"] == 1
        assert status["currentSecret"] == "db-v1"
        for kind, name in WORKLOADS:
            assert template_secrets(kube, namespace, kind, name) == {"db-v1"}, f"{kind} {name} not back on db-v1"
        assert secret_names(kube, namespace) == {"db", "db-v1"}, "db-v2 is collected once unreferenced"
        changes = {
            workload: generation - before[workload] for workload, generation in generations(kube, namespace).items()
        }
        assert changes == dict.fromkeys(before, 2), "each pod template is switched once and reverted once"
