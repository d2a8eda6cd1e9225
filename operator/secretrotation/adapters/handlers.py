"""kopf registrations: thin adapters from watch events to the engine.

Only ``on.event`` handlers: they write nothing onto the watched objects (no
annotations, no finalizers), which is what the operator wants for Pods and
workloads it does not own, and for its own resources, whose deletion must
never wait for the operator. An event from a namespace outside the operator's
scope (``memo.scope``: ``adapters/scope.py``) is dropped before the engine sees it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes import client, config

from secretrotation.adapters import scope
from secretrotation.core import names, plan
from secretrotation.shell import api, cluster, engine

ANNOTATION_PREFIX = names.GROUP


def _post_event(body: Mapping[str, Any], event: plan.Event) -> None:
    kopf.event(
        cast(kopf.Body, body), type="Warning" if event.warning else "Normal", reason=event.reason, message=event.message
    )


def _api_client() -> client.ApiClient:
    """In a pod: its ServiceAccount. Elsewhere: $KUBECONFIG or ~/.kube/config, as kopf itself logs in."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return api.BoundedApiClient()


class _QuietEventHandlers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and str(record.msg).startswith("Handler '"))


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # No kopf state is stored on any object; set the storages anyway so that a
    # future state-changing handler writes under our prefix, never kopf's.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX, v1=False)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration", v1=False
    )
    settings.posting.reporting_component = "secretrotation"
    settings.posting.reporting_instance = os.environ.get("POD_NAME", "secretrotation")
    settings.networking.request_timeout = 60
    # A watch that goes quiet on a half-open connection is noticed and reopened from its last
    # resourceVersion (nothing is missed): the server ends each watch within 5 minutes, and the
    # client gives up on one that outlives that by half a minute.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    # Resources are named with full group/version: no CRD discovery, no cluster-wide RBAC for it.
    settings.scanning.disabled = True
    # One line per watch event would drown the transitions that matter.
    logging.getLogger("kopf.objects").addFilter(_QuietEventHandlers())
    kube = cluster.Cluster(_api_client())
    memo.engine = engine.Engine(kube, _post_event)
    memo.setdefault("scope", scope.Scope(clusterwide=True))  # run by kopf itself: its own -n or -A decides


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    await memo.engine.stop_all()


@kopf.on.event(names.GROUP, names.VERSION, names.PLURAL)
async def rotation_changed(type: str | None, body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    if not (namespace and memo.scope.watches(namespace)):
        return
    if type == "DELETED":
        memo.engine.resource_deleted(dict(body))
    else:
        memo.engine.resource_changed(dict(body))


def _feeds_the_store(kind: str, group: str, plural: str) -> None:
    """Every event of ``kind`` goes to the engine's store, and wakes the rotations waiting in its namespace."""

    async def changed(type: str | None, body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
        if namespace and memo.scope.watches(namespace):
            memo.engine.object_changed(kind, namespace, type, body)

    kopf.on.event(group, "v1", plural, id=f"store-{plural}")(changed)


for _kind, _group, _plural in (
    ("Pod", "", "pods"),
    ("ServiceAccount", "", "serviceaccounts"),
    ("Job", "batch", "jobs"),
    ("ReplicaSet", "apps", "replicasets"),
    ("Deployment", "apps", "deployments"),
    ("StatefulSet", "apps", "statefulsets"),
    ("DaemonSet", "apps", "daemonsets"),
):
    _feeds_the_store(_kind, _group, _plural)


@kopf.on.probe(id="rotations")
def tracked_rotations(memo: kopf.Memo, **_: Any) -> int:
    return len(memo.engine.tracked)
