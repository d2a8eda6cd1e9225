"""The simulated kubelet: registers Ready nodes and runs the pods bound to them.

Watches (never polls) Pods, Secrets and the ``sim-kubelet-faults`` ConfigMaps,
queues the pods each change affects, and writes the status that ``podsim``
computes. Timed transitions (readiness delay, crash-loop restarts) are
scheduled wake-ups in the same queue. Only the keys of Secrets are kept.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from secretrotation.shell.kubejson import raw, untyped
from secretrotation_dev.devcluster import podsim

log = logging.getLogger("sim-kubelet")
MERGE_PATCH = "application/merge-patch+json"
Key = tuple[str, str]


def _now() -> datetime:
    return datetime.now(UTC)


def node_manifest(name: str) -> dict[str, Any]:
    resources = {"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def node_status(name: str, version: str) -> dict[str, Any]:
    """A healthy node's status; ``version`` is the API server's, as a kubelet of its release reports."""
    now = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
    healthy = [("MemoryPressure", "False"), ("DiskPressure", "False"), ("PIDPressure", "False"), ("Ready", "True")]
    resources = node_manifest(name)["status"]["capacity"]
    return {
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": kind,
                    "status": value,
                    "reason": "KubeletReady" if kind == "Ready" else "KubeletHasSufficientResources",
                    "message": "simulated kubelet",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for kind, value in healthy
            ],
            "addresses": [{"type": "Hostname", "address": name}],
            "nodeInfo": {
                "kubeletVersion": version,
                "kubeProxyVersion": version,
                "containerRuntimeVersion": "sim://1",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "simulated",
                "kernelVersion": "simulated",
                "machineID": name,
                "systemUUID": name,
                "bootID": name,
            },
        }
    }


class WakeQueue:
    """Pod keys to look at, each at a time; the earliest due comes out first, duplicates merge."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, Key]] = []
        self._due: dict[Key, float] = {}
        self._cv = threading.Condition()

    def put(self, key: Key, at: float | None = None) -> None:
        due = time.monotonic() if at is None else at
        with self._cv:
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))
            self._cv.notify()

    def get(self) -> Key:
        with self._cv:
            while True:
                while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # superseded by an earlier wake-up
                if self._heap:
                    due, key = self._heap[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._heap)
                        del self._due[key]
                        return key
                    self._cv.wait(wait)
                else:
                    self._cv.wait()


class SimKubelet:
    def __init__(self, api: client.ApiClient, nodes: list[str], simulator: podsim.PodSimulator) -> None:
        self.core = client.CoreV1Api(api)
        self.nodes = set(nodes)
        self.simulator = simulator
        self.queue = WakeQueue()
        self.lock = threading.Lock()
        self.pods: dict[Key, dict[str, Any]] = {}
        self.secret_keys: dict[Key, frozenset[str]] = {}
        self.faults: dict[str, list[podsim.Fault]] = {}
        self.runtimes: dict[str, podsim.PodRuntime] = {}

    # -- nodes ----------------------------------------------------------------------------

    def register_nodes(self) -> None:
        version = client.VersionApi(self.core.api_client).get_code().git_version
        for name in sorted(self.nodes):
            try:
                self.core.create_node(untyped(node_manifest(name)))
            except ApiException as error:
                if error.status != 409:
                    raise
            self.core.patch_node_status(name, node_status(name, version), _content_type=MERGE_PATCH)
            # The TaintNodesByCondition admission plugin marks new nodes not-ready;
            # the node-lifecycle controller that would lift it is not running.
            self.core.patch_node(name, {"spec": {"taints": None}}, _content_type=MERGE_PATCH)
            log.info("node %s registered and Ready", name)

    # -- watches ----------------------------------------------------------------------------

    def _watch_forever(
        self, name: str, list_call: Callable[..., Any], on_event: Callable[[str, Any], None], **selectors: Any
    ) -> None:
        while True:
            try:
                listing = raw(list_call, **selectors)
                for item in listing["items"]:
                    on_event("ADDED", item)
                version = listing["metadata"]["resourceVersion"]
                stream = watch.Watch().stream(
                    list_call, resource_version=version, deserialize=False, allow_watch_bookmarks=True, **selectors
                )
                for event in stream:
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        on_event(event["type"], event["object"])
            except Exception:
                log.exception("watch of %s failed; relisting", name)
                time.sleep(1)

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        if pod.get("spec", {}).get("nodeName") not in self.nodes:
            return
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        with self.lock:
            if kind == "DELETED":
                self.pods.pop(key, None)
                self.runtimes.pop(pod["metadata"]["uid"], None)
                return
            self.pods[key] = pod
        self.queue.put(key)

    def _on_secret(self, kind: str, secret: dict[str, Any]) -> None:
        meta = secret["metadata"]
        key = (meta["namespace"], meta["name"])
        with self.lock:
            if kind == "DELETED":
                self.secret_keys.pop(key, None)
            else:
                self.secret_keys[key] = frozenset((secret.get("data") or {}).keys())
        self._requeue_namespace(meta["namespace"])

    def _on_configmap(self, kind: str, configmap: dict[str, Any]) -> None:
        meta = configmap["metadata"]
        faults: list[podsim.Fault] = []
        if kind != "DELETED":
            try:
                faults = podsim.parse_faults((configmap.get("data") or {}).get(podsim.FAULTS_KEY, ""))
            except ValueError as error:
                log.error("ignoring faults in %s/%s: %s", meta["namespace"], meta["name"], error)
        with self.lock:
            self.faults[meta["namespace"]] = faults
        self._requeue_namespace(meta["namespace"])

    def _requeue_namespace(self, namespace: str) -> None:
        with self.lock:
            keys = [k for k in self.pods if k[0] == namespace]
        for key in keys:
            self.queue.put(key)

    # -- pods -------------------------------------------------------------------------------

    def _lookup_secret(self, namespace: str, name: str) -> frozenset[str] | None:
        return self.secret_keys.get((namespace, name))

    def sync(self, key: Key) -> None:
        with self.lock:
            pod = self.pods.get(key)
            if pod is None:
                return
            uid = pod["metadata"]["uid"]
            if pod["metadata"].get("deletionTimestamp"):
                self.runtimes.pop(uid, None)
        if pod["metadata"].get("deletionTimestamp"):
            self._remove(pod)
            return
        now = _now()
        with self.lock:
            runtime = self.runtimes.setdefault(uid, podsim.PodRuntime.from_status(pod, now))
            observation = self.simulator.observe(pod, runtime, self._lookup_secret, self.faults.get(key[0], []), now)
        for event in observation.events:
            self._post_event(pod, event)
        if podsim.status_differs(pod.get("status") or {}, observation.status):
            try:
                updated = raw(
                    self.core.patch_namespaced_pod_status,
                    key[1],
                    key[0],
                    {"status": observation.status},
                    _content_type=MERGE_PATCH,
                )
            except ApiException as error:
                if error.status != 404:
                    raise
            else:
                with self.lock:
                    if key in self.pods and self.pods[key]["metadata"]["uid"] == updated["metadata"]["uid"]:
                        self.pods[key] = updated
        if observation.wake_at is not None:
            delay = (observation.wake_at - _now()).total_seconds()
            self.queue.put(key, time.monotonic() + max(0.0, delay))

    def _remove(self, pod: dict[str, Any]) -> None:
        """What the kubelet does once a deleted pod's containers have stopped."""
        meta = pod["metadata"]
        try:
            options = client.V1DeleteOptions(
                grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
            )
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], body=options)
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    def _post_event(self, pod: dict[str, Any], event: podsim.PodEvent) -> None:
        meta = pod["metadata"]
        now = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": event.reason,
            "message": event.message,
            "type": event.type,
            "source": {"component": "kubelet", "host": pod["spec"].get("nodeName", "")},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], untyped(body))
        except ApiException as error:
            log.warning("could not post %s event for %s: %s", event.reason, meta["name"], error.status)

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> None:
        self.register_nodes()
        watches = [
            ("secrets", self.core.list_secret_for_all_namespaces, self._on_secret, {}),
            (
                "faults",
                self.core.list_config_map_for_all_namespaces,
                self._on_configmap,
                {"field_selector": f"metadata.name={podsim.FAULTS_CONFIGMAP}"},
            ),
            ("pods", self.core.list_pod_for_all_namespaces, self._on_pod, {}),
        ]
        for name, call, handler, selectors in watches:
            threading.Thread(
                target=self._watch_forever, args=(name, call, handler), kwargs=selectors, daemon=True, name=name
            ).start()
        for key in self._forever():
            try:
                self.sync(key)
            except Exception:
                log.exception("sync of pod %s/%s failed; retrying", *key)
                self.queue.put(key, time.monotonic() + 1)

    def _forever(self) -> Iterator[Key]:
        while True:
            yield self.queue.get()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m secretrotation_dev.devcluster.kubelet",
        description="Simulated kubelet for the local control plane",
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--nodes", type=int, default=1, help="how many nodes to register")
    parser.add_argument("--readiness-delay", type=float, default=0.5, help="seconds from start to Ready")
    parser.add_argument("--crash-interval", type=float, default=2.0, help="seconds between crash-loop restarts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api = config.new_client_from_config(config_file=args.kubeconfig)
    simulator = podsim.PodSimulator(
        readiness_delay=timedelta(seconds=args.readiness_delay),
        crash_interval=timedelta(seconds=args.crash_interval),
    )
    SimKubelet(api, [f"sim-node-{i}" for i in range(1, args.nodes + 1)], simulator).run()


if __name__ == "__main__":
    main()
