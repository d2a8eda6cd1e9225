"""ServiceAccount versions: what a new account copies, which bindings it joins, what still uses an old one.

Pure. The outage behind this product began with a rotation that deleted "old
service accounts and tokens no longer used" while a workload spec still named
one; so an account is collected only when no Pod runs as it, no pod template
or live ReplicaSet names it, no workload mounts its token, and (where the
cluster tracks it) no one outside the cluster used its token since the switch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from secretrotation.core import names, references
from secretrotation.core.world import AccountState

Obj = Mapping[str, Any]
TOKEN_SUFFIX = "-token"
SERVICE_ACCOUNT_NAME_ANNOTATION = "kubernetes.io/service-account.name"
LEGACY_TOKEN_LAST_USED_LABEL = "kubernetes.io/legacy-token-last-used"
TOKEN_TYPE = "kubernetes.io/service-account-token"
_NOT_COPIED_ANNOTATIONS = (f"{names.GROUP}/", "kubectl.kubernetes.io/")


def token_secret_name(account: str) -> str:
    """The long-lived token Secret the operator creates for an account version (``tokenSecret: true``)."""
    return f"{account}{TOKEN_SUFFIX}"


def account_manifest(
    name: str, rotation: str, revision: int, source: AccountState | None, nonce: str | None = None
) -> dict[str, Any]:
    """A new account version: labels, annotations, pull secrets and automount copied from ``source``."""
    labels = dict(source.labels) if source else {}
    labels.update(names.version_labels(rotation, revision))
    annotations = {
        key: value
        for key, value in (source.annotations if source else {}).items()
        if not key.startswith(_NOT_COPIED_ANNOTATIONS)
    }
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "labels": labels},
    }
    if nonce:
        annotations[names.NONCE_ANNOTATION] = nonce
    if annotations:
        manifest["metadata"]["annotations"] = annotations
    if source and source.image_pull_secrets:
        manifest["imagePullSecrets"] = [{"name": secret} for secret in source.image_pull_secrets]
    if source and source.automount is not None:
        manifest["automountServiceAccountToken"] = source.automount
    return manifest


def token_secret_manifest(account: str, rotation: str, revision: int, nonce: str | None = None) -> dict[str, Any]:
    """A long-lived token Secret for ``account``, filled in by the token controller."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": TOKEN_TYPE,
        "metadata": {
            "name": token_secret_name(account),
            "labels": names.version_labels(rotation, revision),
            "annotations": {
                SERVICE_ACCOUNT_NAME_ANNOTATION: account,
                **({names.NONCE_ANNOTATION: nonce} if nonce else {}),
            },
        },
    }


def is_subject(subject: Obj, account: str, namespace: str) -> bool:
    return bool(
        subject.get("kind") == "ServiceAccount"
        and subject.get("name") == account
        and subject.get("namespace", namespace) == namespace
    )


def consents(binding: Obj) -> bool:
    """Whether a RoleBinding lets new versions of the accounts it names join it (its editors decide)."""
    annotations = (binding.get("metadata") or {}).get("annotations") or {}
    return annotations.get(names.EXTEND_BINDING_ANNOTATION) == "true"


def bindings_of(account: str, namespace: str, bindings: Sequence[Obj]) -> list[Obj]:
    """The bindings (Role or ClusterRole) that name ``account`` as a subject."""
    return [b for b in bindings if any(is_subject(s, account, namespace) for s in b.get("subjects") or [])]


def add_subject_patch(binding: Obj, account: str, namespace: str) -> list[dict[str, Any]]:
    """A JSON patch adding ``account``, valid only against the binding version that was judged."""
    subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
    version = {"op": "test", "path": "/metadata/resourceVersion", "value": binding["metadata"]["resourceVersion"]}
    if not binding.get("subjects"):
        return [version, {"op": "add", "path": "/subjects", "value": [subject]}]
    return [version, {"op": "add", "path": "/subjects/-", "value": subject}]


def remove_subject_patch(binding: Obj, account: str, namespace: str) -> list[dict[str, Any]]:
    """A JSON patch removing every subject entry for ``account``; other subjects stay."""
    version = {"op": "test", "path": "/metadata/resourceVersion", "value": binding["metadata"]["resourceVersion"]}
    indexes = [i for i, s in enumerate(binding.get("subjects") or []) if is_subject(s, account, namespace)]
    return [version, *({"op": "remove", "path": f"/subjects/{i}"} for i in reversed(indexes))]


def uses_account(pod_spec: Obj, account: str, *, token: bool = True) -> bool:
    """Whether a pod spec runs as ``account`` or (with ``token``) mounts its operator-made token Secret."""
    if references.service_account_name(pod_spec) == account:
        return True
    return token and token_secret_name(account) in references.referenced_secrets(pod_spec)


def token_used_since(token_labels: Mapping[str, str], switched_at: datetime) -> bool:
    """Whether the cluster saw the legacy token used on or after the switch day (Kubernetes >= 1.28).

    The label holds a date; a use on the switch day itself counts, since it may be later that day.
    """
    last_used = token_labels.get(LEGACY_TOKEN_LAST_USED_LABEL)
    if not last_used:
        return False
    try:
        return date.fromisoformat(last_used) >= switched_at.date()
    except ValueError:
        return True  # unreadable: assume in use, never delete on a guess
