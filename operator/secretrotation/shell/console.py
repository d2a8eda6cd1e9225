"""The API calls of ``kubectl srot``: read and watch SecretRotations, request a rotation, pause one,
and read a namespace as a step would observe it, for a dry run.

The dry run only reads (GET, LIST): the namespace's objects, its CronJobs, and the Secrets,
ServiceAccounts and RoleBindings the preview asks for by ``NeedFacts``. It never asks the
API server whether the operator may extend a binding (a SelfSubjectAccessReview is a create).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from secretrotation.core import names, world
from secretrotation.core.world import Fact, NeedFacts, Needs
from secretrotation.shell.api import read
from secretrotation.shell.cluster import Cluster
from secretrotation.shell.kubejson import raw

MERGE_PATCH = "application/merge-patch+json"
WATCH_WINDOW = 25  # seconds a watch request stays open: under the client's 30 s read timeout
Obj = dict[str, Any]


class NotFound(LookupError):
    """The SecretRotation does not exist."""


class Console:
    def __init__(self, api: client.ApiClient) -> None:
        self.cluster = Cluster(api)
        self.custom = client.CustomObjectsApi(api)
        self.rbac = client.RbacAuthorizationV1Api(api)

    # -- SecretRotations ----------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> Obj:
        found = self.cluster.read_rotation(namespace, name)
        if found is None:
            raise NotFound(f'secretrotations.{names.GROUP} "{name}" not found in namespace {namespace}')
        return found

    def list(self, namespace: str | None) -> list[Obj]:
        """The SecretRotations of ``namespace``, or of every namespace (None)."""
        if namespace is None:
            answer = read(self.custom.list_cluster_custom_object, names.GROUP, names.VERSION, names.PLURAL)
        else:
            call = self.custom.list_namespaced_custom_object
            answer = read(call, names.GROUP, names.VERSION, namespace, names.PLURAL)
        items: list[Obj] = answer["items"]
        return sorted(items, key=lambda r: (r["metadata"]["namespace"], r["metadata"]["name"]))

    def _patch(self, namespace: str, name: str, patch: Obj) -> Obj:
        try:
            answer: Obj = raw(
                self.custom.patch_namespaced_custom_object,
                names.GROUP, names.VERSION, namespace, names.PLURAL, name, patch,
                _content_type=MERGE_PATCH,
            )  # fmt: skip
        except ApiException as error:
            if error.status == 404:
                raise NotFound(f'secretrotations.{names.GROUP} "{name}" not found in namespace {namespace}') from None
            raise
        return answer

    def request(self, namespace: str, name: str, value: str) -> Obj:
        """Set the requested-at annotation to ``value``; the resource as it is now."""
        return self._patch(namespace, name, {"metadata": {"annotations": {names.REQUESTED_AT_ANNOTATION: value}}})

    def set_paused(self, namespace: str, name: str, paused: bool) -> Obj:
        return self._patch(namespace, name, {"spec": {"paused": paused}})

    def wait(self, body: Obj, done: Callable[[Obj], bool], timeout: float) -> Obj:
        """Follow the resource's watch from ``body`` until ``done`` holds; the last version seen either way."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        deadline = time.monotonic() + timeout
        latest = body
        while not done(latest):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return latest
            stream = watch.Watch().stream(
                self.custom.list_namespaced_custom_object, names.GROUP, names.VERSION, namespace, names.PLURAL,
                field_selector=f"metadata.name={name}", resource_version=latest["metadata"]["resourceVersion"],
                timeout_seconds=max(1, min(WATCH_WINDOW, int(remaining) + 1)),
            )  # fmt: skip
            try:
                for event in stream:
                    if event["type"] == "DELETED":
                        raise NotFound(f"SecretRotation {namespace}/{name} was deleted")
                    if event["type"] in ("ADDED", "MODIFIED"):
                        latest = event["object"]
                        if done(latest) or time.monotonic() >= deadline:
                            break
            except ApiException as error:
                if error.status != 410:
                    raise
                latest = self.get(namespace, name)  # the watch expired: start again from a fresh read
        return latest

    # -- the dry run -----------------------------------------------------------------------

    def observe(self, resource: world.Resource, now: datetime) -> Callable[[Needs], world.Observed]:
        """The namespace as a step would see it (one LIST per kind), and a way to read what a
        ``NeedFacts`` asks for next: ``fetch(needs)`` returns the observation with it added."""
        namespace = resource.namespace
        listed = self.cluster.list_kinds(namespace, world.LISTED_KINDS)
        items = {kind: found for kind, (found, _) in listed.items()}
        observed = world.Observed(
            now=now,
            objects=world.NamespaceObjects(
                pods=items["Pod"], deployments=items["Deployment"], stateful_sets=items["StatefulSet"],
                daemon_sets=items["DaemonSet"], jobs=items["Job"], cron_jobs=None,
                replica_sets=items["ReplicaSet"], service_accounts=items["ServiceAccount"],
            ),
            secrets={}, service_accounts={}, bindings=None,
        )  # fmt: skip

        def fetch(needs: Needs) -> world.Observed:
            nonlocal observed
            secrets = dict(observed.secrets or {})
            for name in needs.secrets - secrets.keys():
                secrets[name] = self.cluster.secret_state(namespace, name)
            accounts = dict(observed.service_accounts or {})
            for name in needs.accounts - accounts.keys():
                accounts[name] = self.cluster.account_state(namespace, name)
            objects, bindings = observed.objects, observed.bindings
            if Fact.CRON_JOBS in needs.facts and objects.cron_jobs is None:
                objects = replace(objects, cron_jobs=self.cluster.cron_jobs.listed(namespace, 0.0))
            if Fact.BINDINGS in needs.facts and bindings is None:
                answer = read(self.rbac.list_namespaced_role_binding, namespace)
                bindings = tuple({**b, "kind": "RoleBinding"} for b in answer["items"])
            observed = replace(observed, objects=objects, secrets=secrets, service_accounts=accounts, bindings=bindings)
            return observed

        return fetch


def resource_of(body: Obj) -> world.Resource:
    meta = body["metadata"]
    return world.Resource(
        name=meta["name"],
        namespace=meta["namespace"],
        generation=int(meta.get("generation") or 0),
        annotations=meta.get("annotations") or {},
        spec=body.get("spec") or {},
        status=body.get("status") or {},
        uid=str(meta.get("uid") or ""),
    )


def observed_for(fetch: Callable[[Needs], world.Observed], attempt: Callable[[world.Observed], Any]) -> Any:
    """``attempt(observed)``, reading what each ``NeedFacts`` asks for, until it asks for nothing more."""
    needs = Needs()
    while True:
        try:
            return attempt(fetch(needs))
        except NeedFacts as need:
            if need.needs <= needs:
                raise RuntimeError(f"asked again for what was read: {need.needs}") from None
            needs = needs | need.needs
