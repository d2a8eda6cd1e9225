"""A cluster that pushes back: a quota that refuses the new version, a switch reverted by someone else,
and a version nothing uses. None of them may end in a success that was not earned."""

from __future__ import annotations

import re

import pytest

from kubetest import Kube, condition, deployment_available, eventually, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess
from kubetest.rotations import (
    at_revision,
    consumer,
    create,
    db_rotation,
    reverted_on_deletion,
    rolled_out,
    template_secrets,
    wait_rotation,
)
from secretrotation.core import markers
from secretrotation_dev.devcluster import podsim
from secretrotation_dev.faultproxy import FaultProxy

pytestmark = pytest.mark.integration
ENV_NAME = "/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name"


def _verifying_on_v1(kube: Kube, namespace: str) -> None:
    """Deployment api switched from db to db-v1, and held in Verifying for a minute (stableFor)."""
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    consumer(kube, namespace, "api", "db")
    create(kube, namespace, db_rotation(generate=[{"key": "password"}], verify={"timeout": "3m", "stableFor": "1m"}))
    wait_rotation(kube, namespace, "db", lambda o: (o.get("status") or {}).get("phase") == "Verifying", "Verifying")
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}


def _api_returned_to_db(kube: Kube, namespace: str) -> None:
    """Wait until Deployment api is back on db, and the Warning RevertedOnDeletion says so."""
    kube.wait_one(
        kube.apps.list_namespaced_deployment,
        "api",
        lambda d: "db-v1" not in str(d["spec"]["template"]),
        namespace=namespace,
        what="api back on the version in use",
    )
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db"}
    reverted = reverted_on_deletion(kube, namespace)
    assert reverted["type"] == "Warning" and "Deployment api returned to db" in reverted["message"], reverted


def _step_errors(operator: OperatorProcess, namespace: str) -> float:
    pattern = rf'secretrotation_step_errors_total\{{name="db",namespace="{namespace}"\}} ([0-9.]+)'
    found = re.search(pattern, operator.metrics())
    return float(found.group(1)) if found else 0.0


def test_a_quota_that_refuses_the_new_version_stalls_with_quota_exceeded_not_a_retry_loop(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    consumer(kube, namespace, "api", "db")
    count = str(len(raw(kube.core.list_namespaced_secret, namespace)["items"]))
    quota = {"metadata": {"name": "no-more-secrets"}, "spec": {"hard": {"secrets": count}}}
    kube.core.create_namespaced_resource_quota(namespace, quota)
    kube.wait_one(
        kube.core.list_namespaced_resource_quota,
        "no-more-secrets",
        lambda q: ((q.get("status") or {}).get("used") or {}).get("secrets") == count,
        namespace=namespace,
        what="quota usage counted",
    )

    create(kube, namespace, db_rotation(generate=[{"key": "password"}]))
    stalled = wait_rotation(
        kube,
        namespace,
        "db",
        lambda o: (condition(o, "Stalled") or {}).get("reason") == "QuotaExceeded",
        "Stalled QuotaExceeded",
    )

    message = condition(stalled, "Stalled")["message"]  # type: ignore[index]
    assert "exceeded quota" in message and "no-more-secrets" in message, message
    assert (condition(stalled, "Ready") or {}).get("status") == "False", stalled["status"]
    assert "currentSecret" not in stalled["status"], "nothing was rotated in"
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db"}, "nothing may be switched"
    assert "retrying in 300s" in operator.logs(), "a refusal is retried every few minutes, not in a loop"
    assert _step_errors(operator, namespace) <= 2, "the refused create was retried at once"

    # Once the quota allows it, a change to the resource itself retries at once, and the rotation goes on.
    kube.core.delete_namespaced_resource_quota("no-more-secrets", namespace)
    patch = {"spec": {"retain": 2}}
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db", patch)
    rotated = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 once the quota is gone")
    assert rotated["status"]["currentSecret"] == "db-v1"
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}


def test_a_switch_reverted_during_verification_is_never_promoted(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _verifying_on_v1(kube, namespace)

    # Argo CD self-heal, or a human, puts the Deployment back on the Secret Git names.
    revert = [{"op": "test", "path": ENV_NAME, "value": "db-v1"}, {"op": "replace", "path": ENV_NAME, "value": "db"}]
    kube.apps.patch_namespaced_deployment("api", namespace, revert, _content_type="application/json-patch+json")

    failed = wait_rotation(
        kube,
        namespace,
        "db",
        lambda o: (
            (condition(o, "Stalled") or {}).get("reason") == "TargetChangedExternally"
            and o["status"].get("phase") == "Idle"
        ),
        "Stalled TargetChangedExternally",
    )
    assert "Deployment api was changed by someone else" in condition(failed, "Stalled")["message"]  # type: ignore[index]
    assert "currentSecret" not in failed["status"], f"a version no target uses was promoted: {failed['status']}"
    assert (condition(failed, "Ready") or {}).get("status") == "False"
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db"}, "the operator fought the revert"


def test_a_version_nothing_consumes_is_ready_as_no_consumers_not_verified_healthy(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    create(kube, namespace, db_rotation(generate=[{"key": "password"}], targets=[{"kind": "Deployment", "name": "x"}]))

    rotated = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1")

    ready = condition(rotated, "Ready") or {}
    assert ready.get("reason") == "NoConsumers", ready
    assert "nothing was verified" in ready.get("message", ""), ready


def test_deleting_a_rotation_mid_flight_returns_its_unverified_switches(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _verifying_on_v1(kube, namespace)

    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db")

    _api_returned_to_db(kube, namespace)
    assert "db-v1" in {s["metadata"]["name"] for s in raw(kube.core.list_namespaced_secret, namespace)["items"]}


def test_a_revert_after_deletion_that_meets_a_conflict_is_judged_again_from_a_fresh_read(
    kube: Kube, namespace: str, proxied_operator: tuple[OperatorProcess, FaultProxy]
) -> None:
    """A rolling Deployment's controller writes its status every few seconds, and each write fails the revert's
    resourceVersion precondition: the revert reads it again and goes on; it may not give up after one try."""
    _, proxy = proxied_operator
    _verifying_on_v1(kube, namespace)
    rolled_out(kube, namespace)  # from here on, a switch mark judged as an orphan would be kept, not reverted
    modified = 'Operation cannot be fulfilled on deployments.apps "api": the object has been modified'
    proxy.refuse("PATCH", r"/deployments/api$", 409, modified)

    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db")
    eventually(lambda: _refused(proxy) >= 1, timeout=30, what="the revert's first patch answered 409")
    proxy.stop_refusing()

    _api_returned_to_db(kube, namespace)
    failed = [e for e in raw(kube.core.list_namespaced_event, namespace)["items"] if e["reason"] == "RevertFailed"]
    assert failed == [], f"a conflict is not a failure: {[e['message'] for e in failed]}"


def _refused(proxy: FaultProxy) -> int:
    return sum(n for k, n in proxy.counts().items() if k.fault == "refused")


def test_a_rotation_deleted_while_the_operator_was_down_is_undone_once_it_is_back(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    """The status goes with the resource; the switch mark on the workload is what the operator finds."""
    faults = "- secret: db-v1\n  effect: NeverReady\n"
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
    )
    _verifying_on_v1(kube, namespace)  # api's new pod never turns Ready: its rollout cannot complete
    operator.kill()

    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db")
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}, "nobody reverted it yet"
    operator.start()

    kube.wait_one(
        kube.apps.list_namespaced_deployment,
        "api",
        lambda d: "db-v1" not in str(d["spec"]["template"]) and markers.SWITCH_ANNOTATION not in str(d["metadata"]),
        namespace=namespace,
        what="api back on db, its switch mark gone",
    )
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db"}
    reverted = reverted_on_deletion(kube, namespace)
    assert reverted["involvedObject"]["kind"] == "Deployment" and reverted["type"] == "Warning", reverted
    assert "returned to db" in reverted["message"], reverted
    assert "db-v1" in {s["metadata"]["name"] for s in raw(kube.core.list_namespaced_secret, namespace)["items"]}


def test_a_switch_that_rolled_out_is_left_alone_when_its_rotation_was_deleted_unseen(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _verifying_on_v1(kube, namespace)  # api's new pod is Ready: only the stability window holds it
    kube.wait_one(
        kube.apps.list_namespaced_deployment, "api", deployment_available, namespace=namespace, what="api rolled out"
    )
    operator.kill()
    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db")
    operator.start()

    kube.wait_one(
        kube.apps.list_namespaced_deployment,
        "api",
        lambda d: markers.SWITCH_ANNOTATION not in str(d["metadata"]),
        namespace=namespace,
        what="the stale switch mark dropped",
    )
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}, "a working switch was undone"


def test_a_switch_an_admission_policy_denies_rolls_back_the_others_and_stalls_without_a_loop(
    kube: Kube, namespace: str, proxied_operator: tuple[OperatorProcess, FaultProxy]
) -> None:
    """An admission webhook refuses the patch of one target: nothing may stay half-switched, nor be retried hot."""
    _, proxy = proxied_operator
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    for name in ("api", "web"):
        consumer(kube, namespace, name, "db")
    denial = 'admission webhook "freeze.example.com" denied the request: web is frozen'
    proxy.refuse("PATCH", r"/deployments/web$", 403, denial)

    create(kube, namespace, db_rotation(generate=[{"key": "password"}], verify={"timeout": "3m", "stableFor": "1s"}))
    stalled = wait_rotation(
        kube, namespace, "db",
        lambda o: (condition(o, "Stalled") or {}).get("reason") == "AdmissionDenied" and o["status"]["phase"] == "Idle",
        "Stalled AdmissionDenied, rolled back",
    )  # fmt: skip

    assert "web is frozen" in condition(stalled, "Stalled")["message"]  # type: ignore[index]
    assert "currentSecret" not in stalled["status"], "nothing was promoted"
    for name in ("api", "web"):
        assert template_secrets(kube, namespace, "Deployment", name) == {"db"}, f"{name} left half-switched"
    refused = _refused(proxy)
    assert refused <= 2, f"the denied patch was retried {refused} times: a refusal is not retried hot"
