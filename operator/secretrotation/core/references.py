"""Find and rewrite references to Secrets and ServiceAccounts in a pod spec.

A pod spec is ``spec`` of a Pod or ``spec.template.spec`` of a workload, as the
Kubernetes API returns it in JSON (camelCase keys). Every function here is pure:
inputs are never mutated, rewrites return deep copies, and missing or ``null``
fields anywhere are read as empty, because hand-written manifests and partially
defaulted objects omit them freely.

One traversal (``_reference_sites``) serves both reading and rewriting, so the
set of references we report and the set we rename can never drift apart.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

# Scanning visits ephemeral containers too: they cannot appear in a workload
# template, but a live Pod can carry them and they keep a Secret in use.
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")

# What the API server uses when a pod names no service account.
DEFAULT_SERVICE_ACCOUNT = "default"

_TEMPLATE_POD_SPEC = ("spec", "template", "spec")
_POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": _TEMPLATE_POD_SPEC,
    "StatefulSet": _TEMPLATE_POD_SPEC,
    "DaemonSet": _TEMPLATE_POD_SPEC,
    "ReplicaSet": _TEMPLATE_POD_SPEC,
    "Job": _TEMPLATE_POD_SPEC,
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

# A location inside a pod spec, as the keys and list indices leading to it.
_Path = tuple[str | int, ...]


class RefKind(enum.Enum):
    """The places in a pod spec that can name a Secret."""

    ENV_KEY = "envKey"  # containers[].env[].valueFrom.secretKeyRef
    ENV_FROM = "envFrom"  # containers[].envFrom[].secretRef
    VOLUME = "volume"  # volumes[].secret.secretName
    PROJECTED = "projected"  # volumes[].projected.sources[].secret.name
    IMAGE_PULL = "imagePull"  # imagePullSecrets[].name


@dataclass(frozen=True)
class SecretRef:
    """One reference to a Secret in a pod spec.

    ``where`` is a human-readable path that never contains values, e.g.
    ``containers[app].env[DB_PASSWORD]`` or ``volumes[bundle].projected``.
    ``keys`` are the Secret keys this reference reads by name; it is empty when
    the whole Secret is used (envFrom, a volume without items, imagePullSecrets).
    """

    secret: str
    kind: RefKind
    where: str
    keys: frozenset[str]
    optional: bool


class MissingKey(NamedTuple):
    """A reference that needs ``key``, which the Secret does not hold."""

    ref: SecretRef
    key: str


@dataclass(frozen=True)
class _Site:
    """A reference together with the path of the field that holds its name."""

    ref: SecretRef
    name_path: _Path


def secret_references(pod_spec: Mapping[str, Any]) -> list[SecretRef]:
    """All references to Secrets in ``pod_spec``, in document order."""
    return [site.ref for site in _reference_sites(pod_spec)]


def referenced_secrets(pod_spec: Mapping[str, Any]) -> frozenset[str]:
    """Names of every Secret that ``pod_spec`` references in any way."""
    return frozenset(ref.secret for ref in secret_references(pod_spec))


def references_to(pod_spec: Mapping[str, Any], secret_name: str) -> list[SecretRef]:
    """The references to the Secret ``secret_name``, in document order."""
    return [ref for ref in secret_references(pod_spec) if ref.secret == secret_name]


def missing_keys(pod_spec: Mapping[str, Any], secret_name: str, available_keys: Collection[str]) -> list[MissingKey]:
    """Each non-optional reference to ``secret_name`` paired with a key it lacks.

    Ordered by the reference's place in the document, then by key, so that
    messages built from the result are stable from one reconcile to the next.
    An empty list means the Secret holds every key the pod needs.
    """
    return [
        MissingKey(ref, key)
        for ref in references_to(pod_spec, secret_name)
        if not ref.optional
        for key in sorted(ref.keys)
        if key not in available_keys
    ]


def rewrite_secret_references(pod_spec: Mapping[str, Any], old: str, new: str) -> tuple[dict[str, Any], int]:
    """A deep copy of ``pod_spec`` with every reference to ``old`` renamed to ``new``.

    Covers all five reference kinds in containers, init containers and
    ephemeral containers. Returns the copy and the number of references renamed;
    nothing else in the copy differs from the input.
    """
    rewritten = copy.deepcopy(dict(pod_spec))
    count = 0
    for site in _reference_sites(pod_spec):
        if site.ref.secret == old:
            _set_at(rewritten, site.name_path, new)
            count += 1
    return rewritten, count


def service_account_name(pod_spec: Mapping[str, Any]) -> str:
    """The service account the pod runs as.

    Reads ``serviceAccountName``, then the deprecated ``serviceAccount``, and
    otherwise answers ``"default"``, which the API server fills in.
    """
    return (
        _non_empty_str(pod_spec.get("serviceAccountName"))
        or _non_empty_str(pod_spec.get("serviceAccount"))
        or DEFAULT_SERVICE_ACCOUNT
    )


def rewrite_service_account(pod_spec: Mapping[str, Any], old: str, new: str) -> tuple[dict[str, Any], int]:
    """A deep copy of ``pod_spec`` running as ``new`` if it ran as ``old``.

    Returns the copy and 1 if it was rewritten, else 0. The deprecated
    ``serviceAccount`` field is updated only when present, since the API server
    rejects a pod whose two fields disagree.
    """
    rewritten = copy.deepcopy(dict(pod_spec))
    if service_account_name(pod_spec) != old:
        return rewritten, 0
    rewritten["serviceAccountName"] = new
    if rewritten.get("serviceAccount") is not None:
        rewritten["serviceAccount"] = new
    return rewritten, 1


def pod_spec_path(kind: str) -> tuple[str, ...]:
    """The keys leading from an object of ``kind`` to its pod spec.

    Raises ValueError for a kind that has no pod spec we know of.
    """
    try:
        return _POD_SPEC_PATHS[kind]
    except KeyError:
        raise ValueError(f"kind {kind!r} has no pod spec we know how to find") from None


def pod_spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec of a Pod, a workload or a CronJob; ``{}`` when it is absent.

    Dispatches on ``obj["kind"]`` and raises ValueError naming any other kind.
    The result is a view into ``obj``, not a copy.
    """
    node: Mapping[str, Any] = obj
    for key in pod_spec_path(str(obj.get("kind"))):
        node = _mapping(node.get(key))
    return node


def _reference_sites(pod_spec: Mapping[str, Any]) -> Iterator[_Site]:
    # Walking the spec's own keys (rather than a fixed list) keeps document order.
    for field, value in pod_spec.items():
        if field in CONTAINER_FIELDS:
            yield from _container_list_sites(field, value)
        elif field == "volumes":
            yield from _volume_sites(value)
        elif field == "imagePullSecrets":
            yield from _image_pull_sites(value)


def _container_list_sites(field: str, containers: Any) -> Iterator[_Site]:
    for index, container in _indexed_mappings(containers):
        label = f"{field}[{_label(container, index)}]"
        base: _Path = (field, index)
        for key, value in container.items():
            if key == "env":
                yield from _env_sites(label, base, value)
            elif key == "envFrom":
                yield from _env_from_sites(label, base, value)


def _env_sites(container_label: str, base: _Path, env: Any) -> Iterator[_Site]:
    for index, variable in _indexed_mappings(env):
        key_ref = _mapping(_mapping(variable.get("valueFrom")).get("secretKeyRef"))
        secret = _non_empty_str(key_ref.get("name"))
        if secret is None:
            continue
        key = _non_empty_str(key_ref.get("key"))
        ref = SecretRef(
            secret=secret,
            kind=RefKind.ENV_KEY,
            where=f"{container_label}.env[{_label(variable, index)}]",
            keys=frozenset({key}) if key else frozenset(),
            optional=_is_optional(key_ref),
        )
        yield _Site(ref, (*base, "env", index, "valueFrom", "secretKeyRef", "name"))


def _env_from_sites(container_label: str, base: _Path, env_from: Any) -> Iterator[_Site]:
    for index, source in _indexed_mappings(env_from):
        secret_ref = _mapping(source.get("secretRef"))
        secret = _non_empty_str(secret_ref.get("name"))
        if secret is None:
            continue
        ref = SecretRef(
            secret=secret,
            kind=RefKind.ENV_FROM,
            where=f"{container_label}.envFrom",
            keys=frozenset(),
            optional=_is_optional(secret_ref),
        )
        yield _Site(ref, (*base, "envFrom", index, "secretRef", "name"))


def _volume_sites(volumes: Any) -> Iterator[_Site]:
    for index, volume in _indexed_mappings(volumes):
        label = f"volumes[{_label(volume, index)}]"
        source = _mapping(volume.get("secret"))
        secret = _non_empty_str(source.get("secretName"))
        if secret is not None:
            ref = SecretRef(
                secret=secret,
                kind=RefKind.VOLUME,
                where=label,
                keys=_item_keys(source),
                optional=_is_optional(source),
            )
            yield _Site(ref, ("volumes", index, "secret", "secretName"))
        yield from _projected_sites(label, index, _mapping(volume.get("projected")))


def _projected_sites(volume_label: str, volume_index: int, projected: Mapping[str, Any]) -> Iterator[_Site]:
    for index, source in _indexed_mappings(projected.get("sources")):
        secret_source = _mapping(source.get("secret"))
        secret = _non_empty_str(secret_source.get("name"))
        if secret is None:
            continue
        ref = SecretRef(
            secret=secret,
            kind=RefKind.PROJECTED,
            where=f"{volume_label}.projected",
            keys=_item_keys(secret_source),
            optional=_is_optional(secret_source),
        )
        path: _Path = ("volumes", volume_index, "projected", "sources", index, "secret", "name")
        yield _Site(ref, path)


def _image_pull_sites(image_pull_secrets: Any) -> Iterator[_Site]:
    for index, entry in _indexed_mappings(image_pull_secrets):
        secret = _non_empty_str(entry.get("name"))
        if secret is None:
            continue
        # Kubernetes has no optional flag here: a missing pull secret is only
        # noticed when the image pull fails.
        ref = SecretRef(
            secret=secret,
            kind=RefKind.IMAGE_PULL,
            where="imagePullSecrets",
            keys=frozenset(),
            optional=False,
        )
        yield _Site(ref, ("imagePullSecrets", index, "name"))


def _item_keys(secret_source: Mapping[str, Any]) -> frozenset[str]:
    keys = (_non_empty_str(item.get("key")) for _, item in _indexed_mappings(secret_source.get("items")))
    return frozenset(key for key in keys if key is not None)


def _is_optional(reference: Mapping[str, Any]) -> bool:
    return reference.get("optional") is True


def _label(entry: Mapping[str, Any], index: int) -> str:
    # Entries are named in valid objects; the index keeps a nameless one apart.
    return _non_empty_str(entry.get("name")) or str(index)


def _indexed_mappings(value: Any) -> Iterator[tuple[int, Mapping[str, Any]]]:
    if not isinstance(value, list):
        return
    for index, entry in enumerate(value):
        if isinstance(entry, Mapping):
            yield index, entry


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _non_empty_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _set_at(tree: dict[str, Any], path: _Path, value: str) -> None:
    node: Any = tree
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
