"""ServiceAccount versions, bindings and the account guard, without a cluster."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from secretrotation.core import accounts, names, planner, world
from secretrotation.core import spec as model
from secretrotation.core.credentials import AccountCredential, Context, template_changes
from secretrotation.core.plan import (
    DeleteAccount,
    DeleteSecret,
)
from secretrotation.core.rules import Finding, collect
from secretrotation.core.world import AccountState, Observed, Resource, SecretState


def account_finding(
    objects: world.NamespaceObjects,
    name: str = "deployer-v1",
    labels: Mapping[str, str] | None = None,
    rotation: str = "deployer",
    in_use: str = "deployer-v2",
) -> Finding | None:
    """What the collect rules say of deleting account ``name`` (None: it may go)."""
    labels = names.version_labels(rotation, 1) if labels is None else labels
    account = AccountState(name, labels, {}, (), (), None, "1")
    observed = Observed(
        now=datetime(2026, 3, 1, tzinfo=UTC),
        objects=objects,
        secrets={accounts.token_secret_name(name): None},  # read by name, and not there
        service_accounts={name: account},
    )
    context = Context(rotation, "ns", model.parse_spec({"serviceAccount": {"name": rotation}}), observed)
    removal = AccountCredential().removal(context, name, in_use, within_retain=False, switched_at=None)
    assert removal is not None
    return collect.judge(removal.candidate)


SOURCE = AccountState(
    name="deployer",
    labels={"team": "payments"},
    annotations={
        "owner": "sre",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "rotation.sre.dev/requested-at": "x",
    },
    secrets=("deployer-token-abcde",),
    image_pull_secrets=("registry",),
    automount=False,
    resource_version="7",
)


def _binding(name: str, *subjects: tuple[str, str]) -> dict[str, Any]:
    return {
        "kind": "RoleBinding",
        "metadata": {"name": name, "resourceVersion": "41"},
        "subjects": [{"kind": kind, "name": subject, "namespace": "ns"} for kind, subject in subjects],
    }


def test_a_new_version_copies_labels_annotations_pull_secrets_and_automount_but_not_tool_annotations() -> None:
    manifest = accounts.account_manifest("deployer-v2", "deployer", 2, SOURCE)

    assert manifest["metadata"]["labels"] == {"team": "payments", **names.version_labels("deployer", 2)}
    assert manifest["metadata"]["annotations"] == {"owner": "sre"}
    assert manifest["imagePullSecrets"] == [{"name": "registry"}]
    assert manifest["automountServiceAccountToken"] is False
    assert "secrets" not in manifest, "token Secrets belong to the old account"


def test_the_token_secret_is_bound_to_its_account_by_annotation() -> None:
    manifest = accounts.token_secret_manifest("deployer-v2", "deployer", 2)

    assert manifest["type"] == "kubernetes.io/service-account-token"
    assert manifest["metadata"]["name"] == "deployer-v2-token"
    assert manifest["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "deployer-v2"}


def test_only_bindings_naming_the_account_in_use_are_carried() -> None:
    bindings = [
        _binding("mine", ("ServiceAccount", "deployer")),
        _binding("theirs", ("ServiceAccount", "other")),
        _binding("a-user", ("User", "deployer")),
    ]

    assert [b["metadata"]["name"] for b in accounts.bindings_of("deployer", "ns", bindings)] == ["mine"]


def test_subject_patches_are_pinned_to_the_judged_binding_version() -> None:
    binding = _binding("shared", ("ServiceAccount", "other"), ("ServiceAccount", "deployer-v1"))

    add = accounts.add_subject_patch(binding, "deployer-v2", "ns")
    remove = accounts.remove_subject_patch(binding, "deployer-v1", "ns")

    assert add[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "41"}
    assert add[1]["path"] == "/subjects/-" and add[1]["value"]["name"] == "deployer-v2"
    assert remove == [add[0], {"op": "remove", "path": "/subjects/1"}], "the other subject stays"


def _template(**pod_spec: Any) -> dict[str, Any]:
    return {"template": {"spec": pod_spec}}


@pytest.mark.parametrize(
    ("kind", "obj"),
    [
        ("Pod", {"metadata": {"name": "p"}, "spec": {"serviceAccountName": "deployer-v1"}}),
        ("Deployment", {"metadata": {"name": "d"}, "spec": _template(serviceAccountName="deployer-v1")}),
        ("ReplicaSet", {"metadata": {"name": "r"}, "spec": {"replicas": 1, **_template(serviceAccount="deployer-v1")}}),
        ("Pod", {"metadata": {"name": "t"},
                 "spec": {"volumes": [{"name": "x", "secret": {"secretName": "deployer-v1-token"}}]}}),
    ],
    ids=["pod-running-as-it", "template-naming-it", "live-replicaset-deprecated-field", "token-mount"],
)  # fmt: skip
def test_the_account_guard_blocks_every_kind_of_use(kind: str, obj: dict[str, Any]) -> None:
    pools = {"Pod": "pods", "Deployment": "deployments", "ReplicaSet": "replica_sets"}
    objects = world.NamespaceObjects(**{pools[kind]: [obj]})
    finding = account_finding(objects)

    assert finding is not None and finding.reason == "StillReferenced"
    assert f"{kind}/{obj['metadata']['name']}" in finding.message


def test_a_replicaset_scaled_to_zero_does_not_block() -> None:
    rs = {"metadata": {"name": "old"}, "spec": {"replicas": 0, "template": {"spec": {"serviceAccountName": "a-v1"}}}}
    assert account_finding(world.NamespaceObjects(replica_sets=[rs]), "a-v1", rotation="a", in_use="a-v2") is None


def test_an_account_this_rotation_did_not_create_is_never_collected() -> None:
    finding = account_finding(world.NamespaceObjects(), "deployer-v0", labels={})

    assert finding is not None and finding.reason == "NotOwned"
    assert finding.message.startswith("ServiceAccount deployer-v0")


@pytest.mark.parametrize(
    ("label", "used"),
    [(None, False), ("2026-03-01", True), ("2026-02-28", False), ("2026-03-02", True), ("garbage", True)],
)
def test_a_legacy_token_used_since_the_switch_blocks_collection(label: str | None, used: bool) -> None:
    labels = {accounts.LEGACY_TOKEN_LAST_USED_LABEL: label} if label else {}

    assert accounts.token_used_since(labels, datetime(2026, 3, 1, 15, 0, tzinfo=UTC)) is used


def test_switching_an_account_rewrites_its_name_and_its_token_mounts_only() -> None:
    workload = {
        "kind": "Deployment",
        "spec": {"template": {"spec": {
            "serviceAccountName": "deployer-v1",
            "volumes": [{"name": "t", "secret": {"secretName": "deployer-v1-token"}},
                        {"name": "o", "secret": {"secretName": "unrelated"}}],
        }}},
    }  # fmt: skip

    changes = template_changes(AccountCredential(token_secret=True), workload, ["deployer-v1"], "deployer-v2")
    without_token = template_changes(AccountCredential(), workload, ["deployer-v1"], "deployer-v2")

    assert [c.path for c in without_token] == ["/spec/template/spec/serviceAccountName"]

    assert {(c.path, c.old, c.new) for c in changes} == {
        ("/spec/template/spec/serviceAccountName", "deployer-v1", "deployer-v2"),
        ("/spec/template/spec/volumes/0/secret/secretName", "deployer-v1-token", "deployer-v2-token"),
    }


def test_collection_of_an_account_whose_token_was_used_after_the_switch_is_blocked() -> None:
    spec = {"serviceAccount": {"name": "deployer", "tokenSecret": True}, "retain": 0}
    parsed = model.parse_spec(spec)
    status = {
        "phase": "CollectingGarbage",
        "revision": 2,
        "currentSecret": "deployer-v2",
        "lastRotationTime": "2026-03-01T12:00:00Z",
        "retainedSecrets": [],
        "rotation": {"revision": 2, "secret": "deployer-v2", "previousSecret": "deployer-v1", "reason": "Requested",
                     "startedAt": "2026-03-01T11:59:00Z", "spec": model.spec_to_snapshot(parsed), "targets": []},
    }  # fmt: skip
    old = AccountState("deployer-v1", names.version_labels("deployer", 1), {}, (), (), None, "3")
    token = SecretState(
        "deployer-v1-token",
        {**names.version_labels("deployer", 1), accounts.LEGACY_TOKEN_LAST_USED_LABEL: "2026-03-02"},
        frozenset({"token"}), False, accounts.TOKEN_TYPE, "4",
    )  # fmt: skip
    observed = Observed(
        now=datetime(2026, 3, 3, tzinfo=UTC),
        objects=world.NamespaceObjects(),
        secrets={"deployer-v1-token": token},
        service_accounts={"deployer-v1": old, "deployer-v2": None},
    )

    step = planner.plan(Resource("deployer", "ns", 1, {}, spec, status), observed)

    assert not any(isinstance(a, DeleteAccount | DeleteSecret) for a in step.actions), step.actions
    assert step.status["pendingDeletion"][0]["reason"] == "TokenInUse"
    assert "outside the cluster" in step.status["pendingDeletion"][0]["message"]
