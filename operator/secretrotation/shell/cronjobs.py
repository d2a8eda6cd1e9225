"""CronJobs, the one referrer kind the operator lists instead of watching.

A CronJob only matters when a version is about to be deleted or a target is
searched for, so a rotation lists them in those steps, and the rotations of a
namespace share one LIST for a few seconds, instead of every operator holding a
watch on every CronJob of the cluster.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from secretrotation.shell.kubejson import raw

CRON_FRESH_FOR = 5.0  # seconds: how old a CronJob LIST a deletion may be judged from (they are not watched)


class CronJobs:
    """LISTs of one namespace's CronJobs (batch/v1), shared by the rotations there for a few seconds."""

    def __init__(self, api: client.ApiClient) -> None:
        self.batch = client.BatchV1Api(api)
        self._lists: dict[str, tuple[float, tuple[dict[str, Any], ...]]] = {}  # namespace -> (when, items)

    def forget(self, namespace: str) -> None:
        self._lists.pop(namespace, None)

    def listed(self, namespace: str, max_age: float) -> tuple[dict[str, Any], ...]:
        """The namespace's CronJobs, from a LIST at most ``max_age`` seconds old."""
        listed = self._lists.get(namespace)
        if listed is not None and time.monotonic() - listed[0] <= max_age:
            return listed[1]
        items = tuple(raw(self.batch.list_namespaced_cron_job, namespace)["items"])
        self._lists[namespace] = (time.monotonic(), items)
        return items
