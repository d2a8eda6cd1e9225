"""SIGKILL the operator in the middle of a ServiceAccount rotation: the restart finishes it exactly once.

The rotation carries RoleBindings and a token Secret per version, so a crash
can fall between creating the account, its token, extending the bindings,
switching the workloads and collecting the old account. Every test runs under
the ``InvariantChecker``: whatever the moment of the crash, no pod names a
missing account or Secret, and no version goes while something uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kubetest import Kube, Obj, condition, container, deployment, raw
from kubetest.accounts import account_and_bindings, account_names, workloads_running_as
from kubetest.invariants import InvariantChecker
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess, rotation
from kubetest.rotations import at_revision, create, opt_in, request_rotation, stalled_with, wait_rotation
from secretrotation.core import references
from secretrotation_dev.devcluster import podsim

pytestmark = pytest.mark.integration
NAME = "deployer"
# Slow enough to catch each phase from a watch, fast enough to keep the module short.
CRASH_VERIFY = {"timeout": "3m", "stableFor": "2s"}
WORKLOADS = (("Deployment", "api"), ("StatefulSet", "worker"), ("Deployment", "uploader"))


# -- the namespace --------------------------------------------------------------------------------


def uploader_mounting(kube: Kube, namespace: str, token: str) -> None:
    """A Deployment running as ``default`` that talks to the API with a version's long-lived token."""
    pod_spec: Obj = {
        "containers": [container(volumeMounts=[{"name": "token", "mountPath": "/var/run/deployer"}])],
        "volumes": [{"name": "token", "secret": {"secretName": token}}],
    }
    kube.apps.create_namespaced_deployment(namespace, deployment("uploader", pod_spec))


# -- reading it back --------------------------------------------------------------------------------


def read_rotation(kube: Kube, namespace: str) -> Obj:
    return dict(raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, NAME))


def _read(kube: Kube, kind: str) -> Callable[..., Any]:
    return kube.apps.read_namespaced_deployment if kind == "Deployment" else kube.apps.read_namespaced_stateful_set


def pod_spec_of(kube: Kube, namespace: str, kind: str, name: str) -> Obj:
    return dict(references.pod_spec_of({**raw(_read(kube, kind), name, namespace), "kind": kind}))


def generations(kube: Kube, namespace: str) -> dict[str, int]:
    """Each workload's ``metadata.generation``: it rises once per change of its pod template."""
    return {
        f"{kind} {name}": raw(_read(kube, kind), name, namespace)["metadata"]["generation"] for kind, name in WORKLOADS
    }


def binding_subjects(kube: Kube, namespace: str) -> dict[str, list[str]]:
    """Every RoleBinding's subject names, duplicates kept (a repeated patch would show)."""
    items = raw(kube.rbac.list_namespaced_role_binding, namespace)["items"]
    return {b["metadata"]["name"]: sorted(s["name"] for s in b.get("subjects") or []) for b in items}


def secrets_by_name(kube: Kube, namespace: str) -> dict[str, Obj]:
    return {s["metadata"]["name"]: s for s in raw(kube.core.list_namespaced_secret, namespace)["items"]}


# -- the scenario -------------------------------------------------------------------------------------


def rotated_once(kube: Kube, namespace: str) -> tuple[dict[str, int], dict[str, list[str]]]:
    """The namespace on deployer-v1, with an uploader mounting its token; the generations and bindings then."""
    opt_in(kube, namespace)
    account_and_bindings(kube, namespace)
    workloads_running_as(kube, namespace, "deployer")
    spec = {"serviceAccount": {"name": NAME, "tokenSecret": True}, "verify": CRASH_VERIFY, "retain": 0}
    create(kube, namespace, rotation(NAME, **spec))
    wait_rotation(kube, namespace, NAME, at_revision(1), "revision 1 Ready")
    uploader_mounting(kube, namespace, "deployer-v1-token")
    return generations(kube, namespace), binding_subjects(kube, namespace)


def in_phase(phase: str) -> Callable[[Obj], bool]:
    def check(obj: Obj) -> bool:
        return (obj.get("status") or {}).get("phase") == phase

    return check


def new_account_exists(kube: Kube, namespace: str) -> None:
    kube.wait_one(
        kube.core.list_namespaced_service_account, "deployer-v2", lambda _: True, namespace=namespace, what="staged"
    )


Effect = Callable[[Kube, str], None]


def kill_in_phase(
    kube: Kube, namespace: str, operator: OperatorProcess, phase: str, effect: Effect | None = None
) -> None:
    """SIGKILL the operator the moment the status reports ``phase`` (and ``effect`` is seen), then restart it.

    The kill only proves something if the cursor was still at ``phase``: that is checked.
    """
    wait_rotation(kube, namespace, NAME, in_phase(phase), f"phase {phase}")
    if effect is not None:
        effect(kube, namespace)
    operator.kill()
    cursor = (read_rotation(kube, namespace).get("status") or {}).get("phase")
    assert cursor == phase, f"the operator left {phase} (now {cursor}) before it was killed: the kill proves nothing"
    operator.start()


def assert_rotated_exactly_once(
    kube: Kube, namespace: str, before: dict[str, int], bound_before: dict[str, list[str]]
) -> None:
    done = wait_rotation(kube, namespace, NAME, at_revision(2), "revision 2 Ready", timeout=60)
    status = done["status"]
    assert (status["currentSecret"], status["retainedSecrets"]) == ("deployer-v2", [])
    assert status["lastHandledRequest"] == "second"
    assert "pendingDeletion" not in status, status["pendingDeletion"]
    assert account_names(kube, namespace) == {"deployer", "deployer-v2", "other"}, "retain 0, the base kept"
    expected = {
        **bound_before,
        "deployer-reads": ["deployer", "deployer-v2"],
        "shared-reads": ["deployer", "deployer-v2", "other"],
    }
    assert binding_subjects(kube, namespace) == expected, "deployer-v2 joins and deployer-v1 leaves, once each"
    secrets = secrets_by_name(kube, namespace)
    assert not [s for s in secrets if s.startswith("deployer-v1")], "deployer-v1's tokens went with it"
    assert "token" in (secrets["deployer-v2-token"].get("data") or {})
    for kind, name in WORKLOADS[:2]:
        assert references.service_account_name(pod_spec_of(kube, namespace, kind, name)) == "deployer-v2", name
    uploader = pod_spec_of(kube, namespace, "Deployment", "uploader")
    assert references.referenced_secrets(uploader) == {"deployer-v2-token"}
    switches = {workload: g - before[workload] for workload, g in generations(kube, namespace).items()}
    assert switches == dict.fromkeys(before, 1), "each pod template is switched exactly once"


# -- tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "effect"),
    [
        ("Staging", None),
        ("Staging", new_account_exists),  # created, but not yet bound or switched to
        ("RollingOut", None),
        ("Verifying", None),
        ("CollectingGarbage", None),
    ],
    ids=["Staging", "Staging-deployer-v2-created", "RollingOut", "Verifying", "CollectingGarbage"],
)
def test_sigkill_at_every_phase_of_an_account_rotation_still_rotates_exactly_once(
    kube: Kube, namespace: str, operator: OperatorProcess, phase: str, effect: Effect | None
) -> None:
    with InvariantChecker(kube, namespace):
        before, bound_before = rotated_once(kube, namespace)

        request_rotation(kube, namespace, NAME, "second")
        kill_in_phase(kube, namespace, operator, phase, effect)

        assert_rotated_exactly_once(kube, namespace, before, bound_before)


def test_sigkill_during_the_rollback_of_an_account_rotation_still_removes_the_new_account_exactly_once(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    with InvariantChecker(kube, namespace):
        before, bound_before = rotated_once(kube, namespace)
        faults = f"- serviceAccount: deployer-v2\n  effect: {podsim.Effect.CRASH_LOOP.value}\n"
        kube.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
        )

        request_rotation(kube, namespace, NAME, "second")
        kill_in_phase(kube, namespace, operator, "RollingBack")

        failed = wait_rotation(
            kube,
            namespace,
            NAME,
            lambda r: stalled_with("VerificationFailed")(r) and "pendingDeletion" not in r["status"],
            "rolled back and deployer-v2 removed",
            timeout=60,
        )
        status = failed["status"]
        assert "CrashLoopBackOff" in (condition(failed, "Stalled") or {})["message"]
        assert (status["revision"], status["currentSecret"]) == (1, "deployer-v1")
        assert account_names(kube, namespace) == {"deployer", "deployer-v1", "other"}
        assert binding_subjects(kube, namespace) == bound_before, "deployer-v2 leaves every binding it joined"
        assert not [s for s in secrets_by_name(kube, namespace) if s.startswith("deployer-v2")]
        for kind, name in WORKLOADS[:2]:
            assert references.service_account_name(pod_spec_of(kube, namespace, kind, name)) == "deployer-v1", name
        uploader = pod_spec_of(kube, namespace, "Deployment", "uploader")
        assert references.referenced_secrets(uploader) == {"deployer-v1-token"}
        changes = {workload: g - before[workload] for workload, g in generations(kube, namespace).items()}
        assert changes == dict.fromkeys(before, 2), "each pod template is switched once and reverted once"
