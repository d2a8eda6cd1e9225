"""The server-side apply configuration that switches a workload: only the fields this operator owns.

The operator writes workload templates by server-side apply as field manager
``secretrotation``, so ``metadata.managedFields`` names exactly which reference
fields it set, and a GitOps tool can leave those alone (Argo CD's
``managedFieldsManagers``). An apply states the manager's whole intent: a field it
owned and no longer sends is removed (if nobody else owns it). So every apply
sends every field the manager already owns, at its current value, with the
changes of this step over them; nothing it does not mean to delete is ever left out.

The configuration holds ``apiVersion``, ``kind``, ``metadata.name``,
``metadata.resourceVersion`` (server-side apply honours it as a precondition: the
apply lands only on the exact object that was judged, or answers 409), the switch
mark, and the reference fields, each addressed through its list's map key
(containers, initContainers, env, volumes and imagePullSecrets by ``name``).
An atomic list (``envFrom``, a projected volume's ``sources``) has no keys: owning a
field in it means owning the whole list, so it is sent whole, as it stands, with
the new names; so is an atomic reference struct (``secretKeyRef``: name, key, optional).

Pure: reads the live object (with its managedFields) and returns a new dict.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from secretrotation.core.markers import SWITCH_ANNOTATION
from secretrotation.core.objects import mapping
from secretrotation.core.record import Change

FIELD_MANAGER = "secretrotation"
API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1"}

# Lists of a pod template merged by key (``listType=map``, ``listMapKey=name`` in the API);
# every other list a reference sits in (envFrom, projected sources) is atomic.
KEYED_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers", "env", "volumes", "imagePullSecrets"})
KEY = "name"
# A reference struct (``secretKeyRef``, ``secretRef``, a CSI volume's ``nodePublishSecretRef``: the API's
# SecretKeySelector, LocalObjectReference, SecretReference) is atomic (``structType=atomic``): an apply
# sets it whole, so its ``key`` and ``optional`` go with the new ``name``, or the key would be dropped.
ATOMIC_STRUCT_SUFFIX = "Ref"


def renames_a_key(workload: Mapping[str, Any], changes: Sequence[Change]) -> bool:
    """Whether a change rewrites a list item's own key (an ``imagePullSecrets`` name).

    Server-side apply cannot rename a key: it adds the new item and leaves the old one
    to whoever else owns it. Such a switch goes as a JSON patch (``PatchWorkload.operations``).
    """
    for change in changes:
        tokens = _tokens(change.path)
        if len(tokens) >= 3 and tokens[-1] == KEY and tokens[-2].isdigit() and tokens[-3] in KEYED_LISTS:
            return True
    return False


def owns_the_mark(workload: Mapping[str, Any]) -> bool:
    """Whether the manager's applies own the switch mark (one written by a JSON patch, say by an
    older operator, is not: leaving it out of an apply would not remove it)."""
    annotations = mapping(mapping(owned_fields(workload).get("f:metadata")).get("f:annotations"))
    return f"f:{SWITCH_ANNOTATION}" in annotations


def owned_fields(workload: Mapping[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any]:
    """The fields ``manager`` owns by apply (the union of its ``fieldsV1`` sets on the main resource)."""
    owned: dict[str, Any] = {}
    for entry in mapping(workload.get("metadata")).get("managedFields") or []:
        entry = mapping(entry)
        if entry.get("manager") == manager and entry.get("operation") == "Apply" and not entry.get("subresource"):
            _union(owned, mapping(entry.get("fieldsV1")))
    return owned


def configuration(
    workload: Mapping[str, Any], changes: Sequence[Change], *, mark: str | None = None, unmark: bool = False
) -> dict[str, Any]:
    """The apply configuration: the owned fields, the changes over them, and the mark written, kept or dropped.

    ``mark`` writes the mark; ``unmark`` leaves it out (removed, unless someone else owns
    it); neither keeps it if the manager owns it. ``workload`` is the object as judged,
    with ``kind``; its resourceVersion is the precondition.
    """
    rewritten = copy.deepcopy(dict(workload))
    for change in changes:
        _set(rewritten, _tokens(change.path), change.new)
    body = extract(rewritten, owned_fields(workload))
    body.pop("status", None)
    for change in changes:
        _merge(body, addressed(rewritten, _tokens(change.path)))
    _in_live_order(body, rewritten)
    metadata = body.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    if mark is not None:
        annotations[SWITCH_ANNOTATION] = mark
    elif unmark:
        annotations.pop(SWITCH_ANNOTATION, None)
    if not annotations:
        del metadata["annotations"]
    live = mapping(workload.get("metadata"))
    kind = str(workload["kind"])
    metadata.update({"name": live.get("name"), "resourceVersion": live.get("resourceVersion")})
    metadata.pop("managedFields", None)
    return {"apiVersion": API_VERSIONS[kind], "kind": kind, **body, "metadata": metadata}


def extract(live: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``live`` that a ``fieldsV1`` set names, with list items addressed by their keys."""
    out: dict[str, Any] = {}
    for token, children in fields.items():
        if not token.startswith("f:") or not isinstance(live, Mapping):
            continue
        name = token[2:]
        if name not in live:
            continue
        value = live[name]
        if isinstance(value, list) and any(t.startswith(("k:", "v:")) for t in mapping(children)):
            out[name] = _extract_items(value, mapping(children))
        elif isinstance(value, Mapping) and any(t.startswith("f:") for t in mapping(children)):
            out[name] = extract(value, mapping(children))
        else:
            out[name] = copy.deepcopy(value)  # a leaf: a scalar, or an atomic list or map, whole
    return out


def addressed(live: Mapping[str, Any], tokens: Sequence[str]) -> dict[str, Any]:
    """The partial object that sets the value at ``tokens`` in ``live``: keyed items by key, atomic lists whole."""
    if not tokens:
        return {}
    token, rest = tokens[0], tokens[1:]
    value = live[token]
    if isinstance(value, list) and token in KEYED_LISTS:
        item = value[int(rest[0])]
        return {token: [{KEY: item[KEY], **addressed(item, rest[1:])}]}
    if isinstance(value, Mapping) and rest and not token.endswith(ATOMIC_STRUCT_SUFFIX):
        return {token: addressed(value, rest)}
    return {token: copy.deepcopy(value)}  # the value itself, or an atomic list or reference whole


def _extract_items(items: list[Any], fields: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = []
    for token, children in fields.items():
        if token.startswith("k:"):
            key = json.loads(token[2:])
            found = next(
                (i for i in items if isinstance(i, Mapping) and all(i.get(k) == v for k, v in key.items())), None
            )
            if found is not None:
                out.append({**key, **extract(found, mapping(children))})
        elif token.startswith("v:"):
            out.append(json.loads(token[2:]))
    return out


def _in_live_order(partial: Any, live: Any) -> None:
    """Put every keyed list's items in the order the live object has them.

    An apply orders the items it sends as it sends them: out of order, it would reorder
    the workload's containers or volumes (which the operator's own policy refuses).
    """
    if not isinstance(partial, dict) or not isinstance(live, Mapping):
        return
    for key, value in partial.items():
        present = live.get(key)
        if key in KEYED_LISTS and isinstance(value, list) and isinstance(present, list):
            names = [item.get(KEY) for item in present if isinstance(item, Mapping)]
            value.sort(key=lambda item: names.index(item.get(KEY)) if item.get(KEY) in names else len(names))
            for item in value:
                _in_live_order(
                    item, next((p for p in present if isinstance(p, Mapping) and p.get(KEY) == item.get(KEY)), None)
                )
        else:
            _in_live_order(value, present)


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Merge a partial object into another: maps by key, keyed lists item by item, anything else replaced."""
    for key, value in other.items():
        present = into.get(key)
        if isinstance(present, dict) and isinstance(value, Mapping):
            _merge(present, value)
        elif key in KEYED_LISTS and isinstance(present, list) and isinstance(value, list):
            for item in value:
                same = next((p for p in present if isinstance(p, dict) and p.get(KEY) == item.get(KEY)), None)
                if same is None:
                    present.append(copy.deepcopy(item))
                else:
                    _merge(same, item)
        else:
            into[key] = copy.deepcopy(value)


def _union(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        _union(into.setdefault(key, {}), mapping(value))


def _tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.lstrip("/").split("/")]


def _set(tree: Any, tokens: Sequence[str], value: str) -> None:
    for token in tokens[:-1]:
        tree = tree[token] if isinstance(tree, Mapping) else tree[int(token)]
    if isinstance(tree, list):
        tree[int(tokens[-1])] = value
    else:
        tree[tokens[-1]] = value
