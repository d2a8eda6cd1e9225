"""The namespaces' objects in memory, fed by the watch events the operator already receives.

A step reads its namespace from here instead of listing it: what a waiting
rotation costs no longer grows with how long it waits. The store holds only the
namespaces some rotation needs right now (the engine says which), so an idle
operator keeps nothing; a namespace is filled by one LIST per kind the first
time a rotation there needs it, and dropped when none does.

Three rules keep it honest:

* **Newest wins.** An object replaces the one held only if its resourceVersion
  is not older, and a deletion leaves a tombstone, so a LIST that was answered
  before a watch event cannot bring back an older copy.
* **Our own writes first.** The shell puts the object a write returned into the
  store at once (``remember``), so a step that acted never plans from a view
  older than its own write.
* **A fresh LIST is a resync.** ``replace`` swaps in a LIST's objects for a kind
  and drops what the LIST no longer has. The decisive steps (promotion,
  deletion) decide only from kinds listed within ``FRESH_FOR`` and brought up to
  date by the watches since: a watch that silently stopped can never make them
  decide from a view older than that.

Everything runs on the event loop; only the LIST itself happens in a thread.
Secrets are never here: the operator may not list or watch them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from secretrotation.core import apply
from secretrotation.core.world import NamespaceObjects

Obj = Mapping[str, Any]

# The watched kinds, each with its NamespaceObjects field. CronJobs are not watched (their
# API version differs across clusters); the shell lists them in the steps that need them.
WATCHED: Mapping[str, str] = {
    "Pod": "pods",
    "Deployment": "deployments",
    "StatefulSet": "stateful_sets",
    "DaemonSet": "daemon_sets",
    "ReplicaSet": "replica_sets",
    "Job": "jobs",
    "ServiceAccount": "service_accounts",
}
MAX_TOMBSTONES = 4096  # per namespace
FRESH_FOR = 30.0  # seconds a kind's LIST counts as fresh (the watches bring it up to date meanwhile)
# Bulky fields no rule reads: dropped before an object is held. Of managedFields only the
# operator's own entries are kept: what it owns is what its next apply must send again.
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _version(obj: Obj) -> int | None:
    """An object's resourceVersion as a number, or None when it is not one.

    The API calls resourceVersions opaque; every server in practice hands out etcd
    revisions. Where one is not a number, the newest arrival wins.
    """
    text = (obj.get("metadata") or {}).get("resourceVersion")
    return int(text) if isinstance(text, str) and text.isdigit() else None


def _older(candidate: int | None, held: int | None) -> bool:
    """True only when both are numbers and the candidate is the older; otherwise the newest arrival wins."""
    return candidate is not None and held is not None and candidate < held


def slim(obj: Obj) -> dict[str, Any]:
    """The object without the fields that cost memory and that no rule reads."""
    metadata = dict(obj.get("metadata") or {})
    managed = [e for e in metadata.pop("managedFields", None) or [] if e.get("manager") == apply.FIELD_MANAGER]
    if managed:
        metadata["managedFields"] = managed
    annotations = metadata.get("annotations")
    if annotations and any(key in annotations for key in _DROPPED_ANNOTATIONS):
        metadata["annotations"] = {k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS}
    return {**obj, "metadata": metadata}


@dataclass
class _Namespace:
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {kind: {} for kind in WATCHED})
    tombstones: dict[tuple[str, str], int | None] = field(default_factory=dict)
    filled: bool = False
    listed_at: dict[str, float] = field(default_factory=dict)  # kind -> when its last LIST was answered

    def put(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        version = _version(obj)
        held = self.objects[kind].get(name)
        if held is not None and _older(version, _version(held)):
            return
        if (kind, name) in self.tombstones:
            deleted_at = self.tombstones[(kind, name)]
            if held is None and deleted_at is not None and version is not None and version <= deleted_at:
                return  # deleted after this copy was read: a LIST answered before the deletion
            del self.tombstones[(kind, name)]
        self.objects[kind][name] = slim(obj)

    def delete(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        held = self.objects[kind].get(name)
        if held is not None and _older(_version(obj), _version(held)):
            return  # a deletion older than the copy held: the object was re-created since
        self.objects[kind].pop(name, None)
        self.tombstones[(kind, name)] = _version(obj)
        if len(self.tombstones) > MAX_TOMBSTONES:  # only a LIST in flight needs them: keep the newest
            del self.tombstones[next(iter(self.tombstones))]


class Store:
    """Objects of the namespaces in use, by namespace, kind and name."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._namespaces: dict[str, _Namespace] = {}
        self._clock = clock

    # -- what the engine decides -----------------------------------------------------------

    def open(self, namespace: str) -> bool:
        """Start holding a namespace; True when it still has to be filled by a LIST."""
        held = self._namespaces.setdefault(namespace, _Namespace())
        return not held.filled

    def close(self, namespace: str) -> None:
        """No rotation there needs it: let its objects go."""
        self._namespaces.pop(namespace, None)

    def holds(self, namespace: str) -> bool:
        return namespace in self._namespaces

    @property
    def namespaces(self) -> frozenset[str]:
        return frozenset(self._namespaces)

    def size(self) -> int:
        """How many objects are held, over every namespace (a metric, and a bound to test)."""
        return sum(len(pool) for held in self._namespaces.values() for pool in held.objects.values())

    # -- what the watches and the shell report -----------------------------------------------

    def observe(self, kind: str, namespace: str, event_type: str | None, obj: Obj) -> None:
        """A watch event. Namespaces nobody needs cost a dictionary lookup and nothing else."""
        held = self._namespaces.get(namespace)
        if held is None or kind not in WATCHED:
            return
        if event_type == "DELETED":
            held.delete(kind, obj)
        else:
            held.put(kind, obj)

    def remember(self, kind: str, namespace: str, obj: Obj) -> None:
        """The object a write of ours returned: the store never lags behind our own writes."""
        self.observe(kind, namespace, "MODIFIED", obj)

    def fill(self, namespace: str, listed: Mapping[str, Iterable[Obj]]) -> None:
        """Merge a namespace's first LIST with whatever watch events arrived while it ran."""
        held = self._namespaces.get(namespace)
        if held is None:
            return  # closed meanwhile
        now = self._clock()
        for kind, items in listed.items():
            for obj in items:
                held.put(kind, obj)
            held.listed_at[kind] = now
        held.filled = True

    def replace(self, namespace: str, kind: str, items: Iterable[Obj], list_version: str | None) -> None:
        """A fresh LIST of one kind: take its objects, and drop held ones it proves gone.

        An object held but absent from the LIST is gone unless it is newer than the
        LIST itself (created after the LIST was answered, seen by a watch event).
        """
        held = self._namespaces.get(namespace)
        if held is None:
            return
        listed = list(items)
        held.listed_at[kind] = self._clock()
        for obj in listed:
            held.put(kind, obj)
        names = {obj["metadata"]["name"] for obj in listed}
        cut = int(list_version) if list_version and list_version.isdigit() else None
        for name, obj in list(held.objects[kind].items()):
            version = _version(obj)
            if name not in names and (cut is None or version is None or version <= cut):
                held.delete(kind, {"metadata": {"name": name, "resourceVersion": list_version}})

    def stale_kinds(self, namespace: str, kinds: Iterable[str]) -> frozenset[str]:
        """The kinds not listed within ``FRESH_FOR``: what a decisive step must list again."""
        held = self._namespaces.get(namespace)
        now = self._clock()
        listed = held.listed_at if held is not None else {}
        return frozenset(k for k in kinds if now - listed.get(k, float("-inf")) > FRESH_FOR)

    # -- what a step reads -----------------------------------------------------------------

    def get(self, namespace: str, kind: str, name: str) -> Obj | None:
        held = self._namespaces.get(namespace)
        return held.objects[kind].get(name) if held is not None and kind in held.objects else None

    def view(self, namespace: str) -> NamespaceObjects:
        """The namespace as the store holds it now: a snapshot a step can plan from."""
        held = self._namespaces.get(namespace)
        if held is None or not held.filled:
            raise LookupError(f"namespace {namespace} is not held")
        pools = {WATCHED[kind]: tuple(objects.values()) for kind, objects in held.objects.items()}
        return NamespaceObjects(**pools)
