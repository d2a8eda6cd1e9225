"""CronJobs, the one referrer kind the operator lists instead of watching (its API version differs across clusters)."""

from __future__ import annotations

import json
import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

CRON_FRESH_FOR = 5.0  # seconds: how old a CronJob LIST a deletion may be judged from (they are not watched)


class CronJobs:
    """LISTs of one namespace's CronJobs, shared by the rotations there for a few seconds."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._versions: tuple[str, ...] = ("v1", "v1beta1")
        self._lists: dict[str, tuple[float, tuple[dict[str, Any], ...]]] = {}  # namespace -> (when, items)

    def forget(self, namespace: str) -> None:
        self._lists.pop(namespace, None)

    def listed(self, namespace: str, max_age: float) -> tuple[dict[str, Any], ...]:
        """The namespace's CronJobs, from a LIST at most ``max_age`` seconds old (rotations there share it).

        CronJobs are not watched (their API version differs across clusters), so a LIST is the only
        way to see them; concurrent rotations in one namespace share one instead of each making theirs.
        """
        listed = self._lists.get(namespace)
        if listed is not None and time.monotonic() - listed[0] <= max_age:
            return listed[1]
        # batch/v1 from Kubernetes 1.21 on, batch/v1beta1 before; the one that answers is remembered.
        items: tuple[dict[str, Any], ...] = ()
        for version in self._versions:
            listing = self._get_path(f"/apis/batch/{version}/namespaces/{namespace}/cronjobs")
            if listing is not None:
                self._versions = (version,)
                items = tuple(listing["items"])
                break
        self._lists[namespace] = (time.monotonic(), items)
        return items

    def _get_path(self, path: str) -> Any:
        """GET a path the generated client has no method for; None on 404."""
        method, url, headers, _, _ = self.api.param_serialize("GET", path, auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, header_params=headers)
        response.read()
        if response.status == 404:
            return None
        if response.status >= 300 or response.data is None:
            raise ApiException(status=response.status, reason=response.reason)
        return json.loads(response.data)
