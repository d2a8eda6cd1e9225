"""Invariants a rotation must never break, checked for the whole of a test.

``InvariantChecker`` watches one namespace from background threads and records
every violation it can prove:

* no Pod references a Secret or names a ServiceAccount that does not exist, and
  neither does the pod template of a workload that wants pods;
* no version Secret (labelled ``rotation.sre.dev/rotation``) is deleted while a
  Pod, or the pod template of a workload that wants pods, references it;
* no version Secret is modified (its ``data`` or ``immutable`` changed).

Watches are not ordered against each other, so a suspicion from one stream is
confirmed with fresh reads before it counts: the referenced object is gone, and
the referrer still exists afterwards. Messages name objects and the invariant,
never a value. The checker never raises from its threads; it fails the test on
exit (or at ``assert_clean``) with every violation listed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, Obj, raw
from secretrotation.core import names, references

WATCH_SECONDS = 1  # how long one watch request lasts: the most a stop waits for a thread
Handler = Callable[[str, Obj], None]


def _wants_pods(kind: str, workload: Obj) -> bool:
    """DaemonSets always; the others while they ask for at least one replica."""
    return kind == "DaemonSet" or (workload.get("spec") or {}).get("replicas", 1) > 0


def _needs(pod_spec: Obj) -> list[tuple[str, str]]:
    """What a pod spec cannot start without, as (kind, name): its Secrets and its ServiceAccount."""
    secrets = [("Secret", name) for name in sorted(references.referenced_secrets(pod_spec))]
    return [*secrets, ("ServiceAccount", references.service_account_name(pod_spec))]


def _digest(secret: Obj) -> str:
    """A fingerprint of what a version may never change, so values are never kept."""
    content = {"data": secret.get("data") or {}, "immutable": bool(secret.get("immutable"))}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


class InvariantChecker:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.violations: dict[str, None] = {}  # an ordered set: a repeated finding is listed once
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._secrets: set[str] = set()  # names seen to exist: a hint only, confirmed before blaming
        self._accounts: set[str] = set()
        self._versions: dict[str, str] = {}  # uid -> digest when first seen
        self._workloads = {
            "Deployment": (kube.apps.list_namespaced_deployment, kube.apps.read_namespaced_deployment),
            "StatefulSet": (kube.apps.list_namespaced_stateful_set, kube.apps.read_namespaced_stateful_set),
            "DaemonSet": (kube.apps.list_namespaced_daemon_set, kube.apps.read_namespaced_daemon_set),
        }

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> InvariantChecker:
        # Secrets and ServiceAccounts first, so that referrers are checked against a warm cache.
        self._follow("Secrets", self.kube.core.list_namespaced_secret, self._on_secret)
        self._follow("ServiceAccounts", self.kube.core.list_namespaced_service_account, self._on_account)
        self._follow("Pods", self.kube.core.list_namespaced_pod, self._on_pod)
        for kind, (list_call, _) in self._workloads.items():
            self._follow(f"{kind}s", list_call, self._workload_handler(kind))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc is None:
            self.assert_clean()
        elif self.violations:
            exc.add_note(self._report())

    def stop(self) -> None:
        """Stop watching; events already received are still checked."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=WATCH_SECONDS + 10)

    def assert_clean(self) -> None:
        """Fail with every violation recorded so far."""
        if self.violations:
            raise AssertionError(self._report())

    def _report(self) -> str:
        with self._lock:
            found = list(self.violations)
        return f"{len(found)} invariant violation(s) in namespace {self.namespace}:\n" + "\n".join(
            f"- {v}" for v in found
        )

    def _violation(self, message: str) -> None:
        with self._lock:
            self.violations[message] = None

    # -- watching ---------------------------------------------------------------------------

    def _follow(self, what: str, list_call: Callable[..., Any], handle: Handler) -> None:
        """Start a thread that lists, then watches ``list_call``; return once the first list is handled."""
        listed = threading.Event()
        thread = threading.Thread(
            target=self._watch, args=(what, list_call, handle, listed), name=f"invariants:{what}", daemon=True
        )
        thread.start()
        self._threads.append(thread)
        listed.wait(timeout=30)

    def _watch(self, what: str, list_call: Callable[..., Any], handle: Handler, listed: threading.Event) -> None:
        known: dict[str, Obj] = {}
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    listing = raw(list_call, self.namespace)
                    fresh = {item["metadata"]["uid"]: item for item in listing["items"]}
                    # A relist after a gap: what vanished meanwhile was deleted.
                    for uid in known.keys() - fresh.keys():
                        self._safely(handle, "DELETED", known[uid])
                    for item in fresh.values():
                        self._safely(handle, "ADDED", item)
                    known, version = fresh, listing["metadata"]["resourceVersion"]
                    listed.set()
                stream = watch.Watch().stream(
                    list_call,
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                )
                for event in stream:
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "DELETED":
                        known.pop(obj["metadata"]["uid"], None)
                    else:
                        known[obj["metadata"]["uid"]] = obj
                    self._safely(handle, event["type"], obj)
            except ApiException as error:
                version = None  # relist
                if error.status != 410:
                    self._violation(f"the checker lost its watch on {what}: API error {error.status}")
                    self._stopping.wait(0.5)
            except Exception as error:
                version = None
                self._violation(f"the checker lost its watch on {what}: {type(error).__name__}")
                self._stopping.wait(0.5)

    def _safely(self, handle: Handler, kind: str, obj: Obj) -> None:
        try:
            handle(kind, obj)
        except Exception as error:  # a checker bug must fail the test, not end the thread
            self._violation(f"the checker failed on {obj['metadata']['name']}: {type(error).__name__}")

    # -- fresh reads --------------------------------------------------------------------------

    def _exists(self, read: Callable[..., Any], name: str, uid: str | None = None) -> bool:
        """Does ``name`` exist now (and, given ``uid``, is it still that same object)?"""
        try:
            found = raw(read, name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return uid is None or found["metadata"]["uid"] == uid

    def _missing(self, kind: str, name: str) -> bool:
        """Is this Secret or ServiceAccount missing? The cache only spares a GET when it is there."""
        seen, read = {
            "Secret": (self._secrets, self.kube.core.read_namespaced_secret),
            "ServiceAccount": (self._accounts, self.kube.core.read_namespaced_service_account),
        }[kind]
        return name not in seen and not self._exists(read, name)

    # -- handlers -----------------------------------------------------------------------------

    def _on_secret(self, event: str, secret: Obj) -> None:
        meta = secret["metadata"]
        name, version = meta["name"], names.ROTATION_LABEL in (meta.get("labels") or {})
        if event == "DELETED":
            self._secrets.discard(name)
            self._secret_deleted(name, version=version)
            return
        self._secrets.add(name)
        # A ServiceAccount token Secret is filled in once by the token controller: that is not a change.
        if version and secret.get("type") != "kubernetes.io/service-account-token":
            first = self._versions.setdefault(meta["uid"], _digest(secret))
            if first != _digest(secret):
                self._violation(f"a version is never modified: Secret {name} changed its data or immutable")

    def _secret_deleted(self, name: str, *, version: bool) -> None:
        pods = raw(self.kube.core.list_namespaced_pod, self.namespace)["items"]
        referrers = [f"Pod {p['metadata']['name']}" for p in pods if name in references.referenced_secrets(p["spec"])]
        if version:
            referrers += self._templates_referencing(name)
        if not referrers or not self._missing("Secret", name):
            return
        invariant = "a version is never deleted while referenced" if version else "no pod references a missing Secret"
        self._violation(f"{invariant}: Secret {name} was deleted while {', '.join(referrers)} referenced it")

    def _templates_referencing(self, secret: str) -> list[str]:
        pools = {kind: list_call for kind, (list_call, _) in self._workloads.items()}
        pools["ReplicaSet"] = self.kube.apps.list_namespaced_replica_set
        return [
            f"{kind} {w['metadata']['name']}"
            for kind, list_call in pools.items()
            for w in raw(list_call, self.namespace)["items"]
            if _wants_pods(kind, w) and ("Secret", secret) in _needs(references.pod_spec_of({**w, "kind": kind}))
        ]

    def _on_account(self, event: str, account: Obj) -> None:
        name = account["metadata"]["name"]
        if event != "DELETED":
            self._accounts.add(name)
            return
        self._accounts.discard(name)
        pods = raw(self.kube.core.list_namespaced_pod, self.namespace)["items"]
        users = [p["metadata"]["name"] for p in pods if ("ServiceAccount", name) in _needs(p["spec"])]
        if users and self._missing("ServiceAccount", name):
            self._violation(f"no pod names a missing ServiceAccount: {name} was deleted while Pods {users} ran as it")

    def _on_pod(self, event: str, pod: Obj) -> None:
        if event == "DELETED":
            return
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        for kind, needed in _needs(pod["spec"]):
            # The pod must outlive the finding: a late event of a pod already gone proves nothing.
            if self._missing(kind, needed) and self._exists(self.kube.core.read_namespaced_pod, name, uid):
                self._violation(f"no pod references a missing {kind}: Pod {name} needs {kind} {needed}")

    def _workload_handler(self, kind: str) -> Handler:
        def check(event: str, workload: Obj) -> None:
            if event == "DELETED" or not _wants_pods(kind, workload):
                return
            name = workload["metadata"]["name"]
            for needed in _needs(references.pod_spec_of({**workload, "kind": kind})):
                if self._missing(*needed) and self._template_still_needs(kind, name, needed):
                    self._violation(
                        f"no workload template references a missing {needed[0]}: "
                        f"{kind} {name} needs {needed[0]} {needed[1]}"
                    )

        return check

    def _template_still_needs(self, kind: str, name: str, needed: tuple[str, str]) -> bool:
        _, read = self._workloads[kind]
        try:
            workload = {**raw(read, name, self.namespace), "kind": kind}
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return _wants_pods(kind, workload) and needed in _needs(references.pod_spec_of(workload))
