"""The server-side apply configuration a switch sends: only the operator's fields, keyed, atomic lists whole."""

from __future__ import annotations

import copy
from typing import Any

from secretrotation.core import apply
from secretrotation.core.markers import SWITCH_ANNOTATION
from secretrotation.core.plan import PatchWorkload
from secretrotation.core.record import Change

POD = "/spec/template/spec"
ENV = f"{POD}/containers/1/env/1/valueFrom/secretKeyRef/name"
ENV_FROM = f"{POD}/containers/1/envFrom/0/secretRef/name"
VOLUME = f"{POD}/volumes/0/secret/secretName"
PROJECTED = f"{POD}/volumes/1/projected/sources/1/secret/name"
PULL = f"{POD}/imagePullSecrets/0/name"


def deployment(managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "api",
            "resourceVersion": "7",
            "annotations": {"team": "payments"},
            "managedFields": managed or [],
        },
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "proxy", "image": "envoy"},
                        {
                            "name": "app",
                            "image": "app:1",
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-v1", "key": "pw"}}},
                            ],
                            "envFrom": [{"secretRef": {"name": "db-v1"}}, {"configMapRef": {"name": "settings"}}],
                        },
                    ],
                    "volumes": [
                        {"name": "creds", "secret": {"secretName": "db-v1"}},
                        {
                            "name": "bundle",
                            "projected": {"sources": [{"configMap": {"name": "ca"}}, {"secret": {"name": "db-v1"}}]},
                        },
                    ],
                    "imagePullSecrets": [{"name": "registry"}],
                }
            },
        },
        "status": {"replicas": 3},
    }


def template_of(body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = body["spec"]["template"]["spec"]
    return result


def test_a_switch_sends_only_the_changed_reference_addressed_by_container_and_env_names() -> None:
    body = apply.configuration(deployment(), [Change(ENV, "db-v1", "db-v2")], mark="m")
    assert body == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "resourceVersion": "7", "annotations": {SWITCH_ANNOTATION: "m"}},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [
                                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-v2", "key": "pw"}}}
                            ],
                        }
                    ]
                }
            }
        },
    }, "the selector whole (atomic); no image, no replicas, no other annotation: nothing else"


def test_atomic_lists_are_sent_whole_as_they_stand_with_the_new_names() -> None:
    changes = [
        Change(ENV_FROM, "db-v1", "db-v2"),
        Change(PROJECTED, "db-v1", "db-v2"),
        Change(VOLUME, "db-v1", "db-v2"),
    ]
    spec = template_of(apply.configuration(deployment(), changes, mark="m"))
    [app] = spec["containers"]
    assert app == {"name": "app", "envFrom": [{"secretRef": {"name": "db-v2"}}, {"configMapRef": {"name": "settings"}}]}
    assert spec["volumes"] == [
        {"name": "creds", "secret": {"secretName": "db-v2"}},
        {"name": "bundle", "projected": {"sources": [{"configMap": {"name": "ca"}}, {"secret": {"name": "db-v2"}}]}},
    ], "each volume by its name, in the workload's order; the projected sources whole"


def owned_by_operator() -> list[dict[str, Any]]:
    """What the API server records after the operator applied the env switch and the mark."""
    fields = {
        "f:metadata": {"f:annotations": {f"f:{SWITCH_ANNOTATION}": {}}},
        "f:spec": {
            "f:template": {
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"app"}': {
                            ".": {},
                            "f:name": {},
                            "f:env": {
                                'k:{"name":"DB_PASSWORD"}': {
                                    ".": {},
                                    "f:name": {},
                                    "f:valueFrom": {"f:secretKeyRef": {}},
                                }
                            },
                        }
                    }
                }
            }
        },
    }
    other = {"manager": "argocd-controller", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    return [{"manager": "secretrotation", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fields}, other]


def test_a_later_apply_sends_again_every_field_the_operator_owns_so_none_is_removed() -> None:
    live = deployment(owned_by_operator())
    live["spec"]["template"]["spec"]["containers"][1]["env"][1]["valueFrom"]["secretKeyRef"]["name"] = "db-v2"
    live["metadata"]["annotations"][SWITCH_ANNOTATION] = "first"
    # Another rotation switches only the volume: the env reference it owns must be in the body, or it would go.
    body = apply.configuration(live, [Change(VOLUME, "db-v1", "cache-v2")], mark="second")
    spec = template_of(body)
    assert spec["containers"] == [
        {"name": "app", "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-v2", "key": "pw"}}}]}
    ]
    assert spec["volumes"] == [{"name": "creds", "secret": {"secretName": "cache-v2"}}]
    assert body["metadata"]["annotations"] == {SWITCH_ANNOTATION: "second"}
    assert "replicas" not in body["spec"], "argocd-controller's field is not the operator's"
    assert "managedFields" not in body["metadata"]


def test_a_revert_applies_the_old_names_and_keeps_the_fields_owned() -> None:
    live = deployment(owned_by_operator())
    live["spec"]["template"]["spec"]["containers"][1]["env"][1]["valueFrom"]["secretKeyRef"]["name"] = "db-v2"
    live["metadata"]["annotations"][SWITCH_ANNOTATION] = "mark"
    reverted = apply.configuration(live, [Change(ENV, "db-v2", "db-v1")])
    [app] = template_of(reverted)["containers"]
    assert app["env"] == [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-v1", "key": "pw"}}}]
    assert reverted["metadata"]["annotations"] == {SWITCH_ANNOTATION: "mark"}, "a rollback keeps the mark"


def test_an_unmark_leaves_out_only_the_mark() -> None:
    live = deployment(owned_by_operator())
    live["metadata"]["annotations"][SWITCH_ANNOTATION] = "mark"
    body = apply.configuration(live, [], unmark=True)
    assert "annotations" not in body["metadata"], "dropped: the operator was its only owner"
    [app] = template_of(body)["containers"]
    assert app["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "db-v1", "the references stay the operator's"


def test_the_configuration_does_not_touch_the_object_it_was_given() -> None:
    live = deployment(owned_by_operator())
    before = copy.deepcopy(live)
    apply.configuration(live, [Change(ENV, "db-v1", "db-v2")], mark="m")
    assert live == before


def test_a_renamed_pull_secret_cannot_be_applied_and_goes_as_a_tested_json_patch() -> None:
    live = deployment()
    renamed = PatchWorkload("Deployment", "api", (Change(PULL, "registry", "registry-v2"),), workload=live)
    assert not renamed.by_apply, "apply would add the new item and leave the old one to its other owners"
    switched = PatchWorkload("Deployment", "api", (Change(ENV, "db-v1", "db-v2"),), mark="m", workload=live)
    assert switched.by_apply
    assert switched.apply_configuration()["metadata"]["resourceVersion"] == "7", "only over the object judged"
    assert not PatchWorkload("Deployment", "api", (Change(ENV, "db-v1", "db-v2"),)).by_apply


def test_a_mark_no_apply_of_ours_wrote_is_removed_by_a_tested_json_patch() -> None:
    marked = deployment()
    marked["metadata"]["annotations"][SWITCH_ANNOTATION] = "m"
    assert not PatchWorkload("Deployment", "api", (), unmark="m", workload=marked).by_apply, "apply would not remove it"
    assert PatchWorkload("Deployment", "api", (), unmark="m", workload=deployment(owned_by_operator())).by_apply


def test_keyed_items_go_in_the_order_the_workload_has_them_whatever_the_order_owned() -> None:
    managed = [{"manager": "secretrotation", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
        "f:volumes": {'k:{"name":"bundle"}': {"f:name": {}, "f:projected": {"f:sources": {}}}}}}}}}]  # fmt: skip
    body = apply.configuration(deployment(managed), [Change(VOLUME, "db-v1", "db-v2")])
    assert [v["name"] for v in template_of(body)["volumes"]] == ["creds", "bundle"], "an apply reorders as it sends"
