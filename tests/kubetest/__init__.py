"""Helpers for tests that talk to the local control plane.

Waiting is watch-driven: ``Kube.wait`` lists once, then follows the watch
stream and checks the condition on every change, so a test reacts as soon as
the cluster does. On time-out it fails with the last state it saw, so a red
test says why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from secretrotation.shell.kubejson import raw

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.extensions = client.ApiextensionsV1Api(api)
        self.authorization = client.AuthorizationV1Api(api)

    def wait(
        self,
        list_call: Callable[..., Any],
        predicate: Callable[[list[Obj]], bool],
        *,
        timeout: float = 60.0,
        what: str = "condition",
        describe: Callable[[list[Obj]], str] | None = None,
        **selectors: Any,
    ) -> list[Obj]:
        """Wait until ``predicate(items)`` holds for the listed objects; return them.

        ``list_call`` is a list function of the client (namespaced or not) and
        ``selectors`` its arguments: namespace, field_selector, label_selector.
        """
        deadline = time.monotonic() + timeout
        listing = raw(list_call, **selectors)
        items: dict[str, Obj] = {item["metadata"]["uid"]: item for item in listing["items"]}
        if predicate(list(items.values())):
            return list(items.values())
        version = listing["metadata"]["resourceVersion"]
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = list(items.values())
                detail = describe(seen) if describe else json.dumps([summary(i) for i in seen])[:3000]
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {detail}")
            stream = watch.Watch().stream(
                list_call,
                resource_version=version,
                timeout_seconds=max(1, int(remaining)),
                deserialize=False,
                **selectors,
            )
            try:
                for event in stream:
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] == "DELETED":
                        items.pop(obj["metadata"]["uid"], None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        items[obj["metadata"]["uid"]] = obj
                    else:
                        continue
                    if predicate(list(items.values())):
                        return list(items.values())
            except ApiException as error:
                if error.status != 410:
                    raise
                listing = raw(list_call, **selectors)
                items = {item["metadata"]["uid"]: item for item in listing["items"]}
                version = listing["metadata"]["resourceVersion"]
                if predicate(list(items.values())):
                    return list(items.values())

    def wait_one(
        self,
        list_call: Callable[..., Any],
        name: str,
        predicate: Callable[[Obj], bool],
        *,
        timeout: float = 60.0,
        what: str = "condition",
        **selectors: Any,
    ) -> Obj:
        """Wait until the named object exists and ``predicate(obj)`` holds."""
        found = self.wait(
            list_call,
            lambda items: bool(items) and predicate(items[0]),
            timeout=timeout,
            what=f"{name}: {what}",
            field_selector=f"metadata.name={name}",
            **selectors,
        )
        return found[0]

    def wait_gone(self, list_call: Callable[..., Any], name: str, *, timeout: float = 60.0, **selectors: Any) -> None:
        self.wait(
            list_call,
            lambda items: not items,
            timeout=timeout,
            what=f"{name} to be gone",
            field_selector=f"metadata.name={name}",
            **selectors,
        )


def eventually(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Wait for a signal that no Kubernetes watch carries (an operator's metrics endpoint)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def summary(obj: Mapping[str, Any]) -> Obj:
    """The parts of an object worth printing when a wait fails."""
    meta = obj.get("metadata", {})
    return {"name": meta.get("name"), "generation": meta.get("generation"), "status": obj.get("status")}


def condition(obj: Mapping[str, Any], kind: str) -> Obj | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None


def waiting_reasons(pod: Mapping[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return [s["state"]["waiting"].get("reason", "") for s in statuses if "waiting" in (s.get("state") or {})]


def pod_ready(pod: Mapping[str, Any]) -> bool:
    ready = condition(pod, "Ready")
    return bool(ready and ready["status"] == "True")


def deployment(name: str, pod_spec: Obj, *, replicas: int = 1, labels: Obj | None = None) -> Obj:
    """A Deployment manifest whose pods carry ``app: <name>``."""
    selector = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": selector}, "spec": pod_spec},
        },
    }


def container(name: str = "app", **fields: Any) -> Obj:
    return {"name": name, "image": "registry.local/app:1", **fields}


def secret(name: str, data: Mapping[str, str], **fields: Any) -> Obj:
    """A Secret manifest; values go in ``stringData`` so tests stay readable."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": dict(data), **fields}


def deployment_available(obj: Mapping[str, Any]) -> bool:
    """kubectl rollout status says done: observed, updated, available, no old replicas."""
    spec, status = obj.get("spec", {}), obj.get("status") or {}
    replicas = spec.get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= obj["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
    )
