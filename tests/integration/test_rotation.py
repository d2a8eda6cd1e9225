"""The rotation engine on the local control plane, with the real operator process."""

from __future__ import annotations

import base64

import pytest

from kubetest import Kube, condition, container, deployment, eventually, raw, secret
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

pytestmark = pytest.mark.integration


def test_three_workloads_are_rotated_three_times_and_old_versions_collected(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    shop_workloads(kube, namespace)
    create(kube, namespace, db_rotation())

    first = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")
    assert first["status"]["currentSecret"] == "db-v1"
    for kind, name in WORKLOADS:
        assert template_secrets(kube, namespace, kind, name) == {"db-v1"}, f"{kind} {name} not switched"
    staged = raw(kube.core.read_namespaced_secret, "db-v1", namespace)
    assert staged["immutable"] is True
    assert staged["metadata"]["labels"] == {"rotation.sre.dev/rotation": "db", "rotation.sre.dev/revision": "1"}
    assert set(staged["data"]) == {"username", "password"}
    assert secret_names(kube, namespace) == {"db", "db-v1"}, "the adopted base Secret is never deleted"
    assert first["status"]["adoptedSecret"] == {"name": "db", "referenced": False}

    request_rotation(kube, namespace, "db", "second")
    second = wait_rotation(kube, namespace, "db", at_revision(2), "revision 2 Ready")
    assert second["status"]["retainedSecrets"] == ["db-v1"]
    assert second["status"]["lastHandledRequest"] == "second"
    assert secret_names(kube, namespace) == {"db", "db-v1", "db-v2"}

    request_rotation(kube, namespace, "db", "third")
    third = wait_rotation(kube, namespace, "db", at_revision(3), "revision 3 Ready")
    assert third["status"]["currentSecret"] == "db-v3"
    assert third["status"]["retainedSecrets"] == ["db-v2"]
    assert secret_names(kube, namespace) == {"db", "db-v2", "db-v3"}, "v1 is collected, v2 retained (retain: 1)"
    for kind, name in WORKLOADS:
        assert template_secrets(kube, namespace, kind, name) == {"db-v3"}
    pods = raw(kube.core.list_namespaced_pod, namespace)["items"]
    for pod in pods:
        refs = references.referenced_secrets(pod["spec"]) & {"db", "db-v1", "db-v2", "db-v3"}
        assert refs == {"db-v3"}, f"pod {pod['metadata']['name']} references {refs}"
    assert {t["state"] for t in third["status"]["targets"]} == {"Verified"}


def test_explicit_targets_switch_only_the_named_workloads(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    for name, tier in (("named", "a"), ("selected", "clients"), ("other", "b")):
        manifest = deployment(name, {"containers": [container(env=env)]}, labels={"tier": tier})
        kube.apps.create_namespaced_deployment(namespace, manifest)
    targets = [{"kind": "Deployment", "name": "named"},
               {"kind": "Deployment", "selector": {"matchLabels": {"tier": "clients"}}}]  # fmt: skip
    create(kube, namespace, db_rotation(targets=targets))

    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")

    assert template_secrets(kube, namespace, "Deployment", "named") == {"db-v1"}
    assert template_secrets(kube, namespace, "Deployment", "selected") == {"db-v1"}
    assert template_secrets(kube, namespace, "Deployment", "other") == {"db"}, "not a target: untouched"


def test_auto_discovery_ignores_workloads_that_do_not_reference_the_secret(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    kube.core.create_namespaced_secret(namespace, secret("unrelated", {"k": "v"}))
    shop_workloads(kube, namespace)
    env = [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "unrelated", "key": "k"}}}]
    kube.apps.create_namespaced_deployment(namespace, deployment("bystander", {"containers": [container(env=env)]}))
    before = raw(kube.apps.read_namespaced_deployment, "bystander", namespace)["metadata"]["generation"]
    create(kube, namespace, db_rotation())

    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")

    for kind, name in WORKLOADS:
        assert template_secrets(kube, namespace, kind, name) == {"db-v1"}
    after = raw(kube.apps.read_namespaced_deployment, "bystander", namespace)["metadata"]["generation"]
    assert after == before, "a workload that does not consume the Secret is never touched"


def test_a_missing_key_stops_the_rotation_before_any_workload_is_touched(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "p", "apikey": "k"}))
    env = [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "db", "key": "apikey"}}}]
    kube.apps.create_namespaced_deployment(namespace, deployment("api", {"containers": [container(env=env)]}))
    generation = raw(kube.apps.read_namespaced_deployment, "api", namespace)["metadata"]["generation"]
    create(kube, namespace, db_rotation())

    failed = wait_rotation(kube, namespace, "db", stalled_with("MissingKey"), "Stalled MissingKey")

    message = condition(failed, "Stalled")["message"]
    assert "Deployment api" in message and "'apikey'" in message, message
    assert raw(kube.apps.read_namespaced_deployment, "api", namespace)["metadata"]["generation"] == generation
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db"}
    assert secret_names(kube, namespace) == {"db"}, "the staged version is removed again"
    assert "currentSecret" not in failed["status"]


def test_an_injected_crash_fails_fast_and_rolls_back(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    shop_workloads(kube, namespace)
    faults = f"- secret: db-v1\n  effect: {podsim.Effect.CRASH_LOOP.value}\n"
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
    )
    create(kube, namespace, db_rotation(verify={"timeout": "10m", "stableFor": "1s"}))

    # Far inside the 10m verification timeout: the crash loop is failure enough.
    failed = wait_rotation(kube, namespace, "db", stalled_with("VerificationFailed"), "rolled back", timeout=120)

    message = condition(failed, "Stalled")["message"]
    assert "CrashLoopBackOff" in message and "pod " in message, message
    assert condition(failed, "Ready")["reason"] == "RotationFailed"
    for kind, name in WORKLOADS:
        assert template_secrets(kube, namespace, kind, name) == {"db"}, f"{kind} {name} was not rolled back"
    assert secret_names(kube, namespace) == {"db"}, "the failed version is collected once nothing uses it"
    assert "currentSecret" not in failed["status"]


def test_new_pods_in_create_container_config_error_fail_fast(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    # The outage pattern: a second Secret the app needs was deleted while old pods
    # kept running. Only new pods notice; the rotation must notice with them.
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    kube.core.create_namespaced_secret(namespace, secret("flags", {"beta": "on"}))
    env = [
        {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "F", "valueFrom": {"secretKeyRef": {"name": "flags", "key": "beta"}}},
    ]
    kube.apps.create_namespaced_deployment(namespace, deployment("api", {"containers": [container(env=env)]}))
    kube.wait_one(kube.apps.list_namespaced_deployment, "api",
                  lambda d: (d.get("status") or {}).get("availableReplicas") == 1, namespace=namespace)  # fmt: skip
    kube.core.delete_namespaced_secret("flags", namespace)
    create(kube, namespace, db_rotation(verify={"timeout": "10m", "stableFor": "1s"}))

    failed = wait_rotation(kube, namespace, "db", stalled_with("VerificationFailed"), "rolled back", timeout=120)

    assert "CreateContainerConfigError" in condition(failed, "Stalled")["message"]
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db", "flags"}


def test_a_rotation_with_no_consumers_still_rotates(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    create(kube, namespace, db_rotation())

    done = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")

    assert done["status"]["currentSecret"] == "db-v1"
    events = raw(kube.core.list_namespaced_event, namespace)["items"]
    assert any(e["reason"] == "NoConsumers" for e in events), [e["reason"] for e in events]


def test_rotate_every_triggers_the_next_rotation(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    create(kube, namespace, db_rotation(rotateEvery="1m"))
    first = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")
    assert first["status"]["nextRotationTime"] > first["status"]["lastRotationTime"]

    second = wait_rotation(kube, namespace, "db", at_revision(2), "the scheduled rotation", timeout=120)

    assert second["status"]["currentSecret"] == "db-v2"


def test_an_operator_restart_does_not_rotate_or_re_roll(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    shop_workloads(kube, namespace)
    create(kube, namespace, db_rotation())
    settled = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")
    generations = {(kind, name): generation_of(kube, namespace, kind, name) for kind, name in WORKLOADS}

    operator.restart()
    # The restarted operator has looked at the resource once its phase metric exists.
    phase_line = f'secretrotation_phase{{name="db",namespace="{namespace}",phase="Idle"}} 1.0'
    eventually(lambda: phase_line in operator.metrics(), timeout=30, what="the restarted operator to step")

    after = raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, "db")
    assert after["status"] == settled["status"], "a restart must not change status"
    after_restart = {(kind, name): generation_of(kube, namespace, kind, name) for kind, name in WORKLOADS}
    assert after_restart == generations, "a restart must not re-roll workloads"


def generation_of(kube: Kube, namespace: str, kind: str, name: str) -> int:
    read = {
        "Deployment": kube.apps.read_namespaced_deployment,
        "StatefulSet": kube.apps.read_namespaced_stateful_set,
        "DaemonSet": kube.apps.read_namespaced_daemon_set,
    }[kind]
    generation: int = raw(read, name, namespace)["metadata"]["generation"]
    return generation


def test_no_secret_value_leaks_anywhere(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    canary = "canary-Zx81-do-not-leak"
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": canary, "password": canary}))
    shop_workloads(kube, namespace)
    body = db_rotation()
    body["spec"]["generate"] = [{"key": "username", "value": canary}, {"key": "password", "length": 24}]
    create(kube, namespace, body)
    done = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")
    generated = base64.b64decode(raw(kube.core.read_namespaced_secret, "db-v1", namespace)["data"]["password"])
    # A spec only the operator can refuse (the CRD's rule sees only identical entries) exercises the error path too.
    selector = {"matchLabels": {"app": "api"}}
    duplicate = [{"kind": "Deployment", "selector": selector},
                 {"kind": "Deployment", "selector": {**selector, "matchExpressions": []}}]  # fmt: skip
    kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "db", {"spec": {"targets": duplicate}}
    )
    wait_rotation(kube, namespace, "db", stalled_with("InvalidSpec"), "InvalidSpec")

    resource = raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, "db")
    places = {
        "operator logs": operator.logs(),
        "metrics": operator.metrics(),
        "events": str(raw(kube.core.list_namespaced_event, namespace)["items"]),
        # The spec holds the constant because the user wrote it there; status and annotations must not.
        "the resource's status": str(resource.get("status")),
        "the resource's annotations": str(resource["metadata"].get("annotations")),
        "workloads": str(
            [
                raw(kube.apps.list_namespaced_deployment, namespace),
                raw(kube.apps.list_namespaced_stateful_set, namespace),
                raw(kube.apps.list_namespaced_daemon_set, namespace),
            ]
        ),
    }
    forms = {
        "canary": canary,
        "canary, base64": base64.b64encode(canary.encode()).decode(),
        "generated password": generated.decode(),
        "generated password, base64": base64.b64encode(generated).decode(),
    }
    for place, text in places.items():
        for form, value in forms.items():
            assert value not in text, f"the {form} appears in {place}"
    assert done["status"]["currentSecret"] == "db-v1"
