"""What a rotation costs, measured: the operator's CPU and memory, its requests through a counting
``FaultProxy``, the kubectl runbook that does the same by hand, extra simulated nodes for big
idle namespaces, and the table ``test_cost.py`` prints.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubetest import Kube, condition, container, deployment, deployment_available, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess
from kubetest.rotations import list_rotations
from secretrotation.core import names
from secretrotation_dev.faultproxy import RequestKey, non_watch_total, summarize

Obj = dict[str, Any]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
EXTRA_KUBELET = Path(__file__).with_name("extra_kubelet.py")
SECRET_REF = "/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name"  # what env_from writes
PODS_PER_NODE = 1000  # the simulated kubelet's node capacity


# -- the operator process -----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def pid_of(operator: OperatorProcess) -> int:
    assert operator.process is not None and operator.process.poll() is None, "the operator is not running"
    return operator.process.pid


@dataclasses.dataclass
class Sample:
    """One measured run: the requests a client made (through its proxy), wall time, and CPU if known."""

    requests: collections.Counter[RequestKey]
    wall: float
    cpu: float | None = None

    @property
    def total(self) -> int:
        return non_watch_total(self.requests)

    @property
    def by_verb(self) -> dict[str, int]:
        return summarize(self.requests)


# -- workloads and rotations ----------------------------------------------------------------------


def env_from(secret_name: str) -> list[Obj]:
    return [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}}}]


def consumers(kube: Kube, namespace: str, secret_name: str, names_: Sequence[str], replicas: int) -> None:
    """A Secret and Deployments whose pods read its ``password``; returns once every one is Available."""
    kube.core.create_namespaced_secret(namespace, secret(secret_name, {"password": "initial"}))
    for name in names_:
        manifest = deployment(name, {"containers": [container(env=env_from(secret_name))]}, replicas=replicas)
        kube.apps.create_namespaced_deployment(namespace, manifest)
    wait_available(kube, namespace, names_, timeout=300)


def wait_available(kube: Kube, namespace: str, names_: Sequence[str], timeout: float) -> None:
    wanted = set(names_)
    kube.wait(
        kube.apps.list_namespaced_deployment,
        lambda items: wanted <= {d["metadata"]["name"] for d in items if deployment_available(d)},
        namespace=namespace,
        timeout=timeout,
        what=f"{len(wanted)} Deployments Available",
        describe=lambda items: f"{sum(deployment_available(d) for d in items)} of {len(wanted)} Available",
    )


def settled(revision: int, obj: Obj) -> bool:
    status = obj.get("status") or {}
    ready = condition(obj, "Ready") or {}
    return status.get("revision") == revision and status.get("phase") == "Idle" and ready.get("status") == "True"


def wait_rotations(kube: Kube, namespace: str, revisions: dict[str, int], timeout: float, what: str) -> list[Obj]:
    """Wait until every named rotation is Ready at its revision; fail loudly, with a count, if one never is."""

    def done(items: list[Obj]) -> bool:
        return sum(settled(revisions.get(r["metadata"]["name"], -1), r) for r in items) == len(revisions)

    def describe(items: list[Obj]) -> str:
        late = [
            r for r in items if r["metadata"]["name"] in revisions and not settled(revisions[r["metadata"]["name"]], r)
        ]
        sample = [
            (r["metadata"]["name"], (r.get("status") or {}).get("phase"), condition(r, "Ready")) for r in late[:5]
        ]
        return f"{len(revisions) - len(late)} of {len(revisions)} settled; not yet: {sample}"

    return kube.wait(
        list_rotations(kube), done, namespace=namespace, plural=PLURAL, timeout=timeout, what=what, describe=describe
    )


def request(kube: Kube, namespace: str, name: str, value: str) -> None:
    patch = {"metadata": {"annotations": {names.REQUESTED_AT_ANNOTATION: value}}}
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)


def generations(kube: Kube, namespace: str) -> dict[str, int]:
    items = raw(kube.apps.list_namespaced_deployment, namespace)["items"]
    return {d["metadata"]["name"]: d["metadata"]["generation"] for d in items}


def versions(kube: Kube, namespace: str, rotation_name: str) -> set[str]:
    selector = f"{names.ROTATION_LABEL}={rotation_name}"
    items = raw(kube.core.list_namespaced_secret, namespace, label_selector=selector)["items"]
    return {s["metadata"]["name"] for s in items}


# -- the kubectl runbook --------------------------------------------------------------------------


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path, cache_dir: Path, namespace: str) -> None:
        self.binary, self.kubeconfig, self.cache_dir, self.namespace = binary, kubeconfig, cache_dir, namespace

    def __call__(self, *args: str, timeout: float = 600) -> str:
        argv = [str(self.binary), f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache_dir}",
                f"--namespace={self.namespace}", *args]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout


def runbook(kubectl: Kubectl, deployments: Sequence[str], old: str, new: str) -> float:
    """The rotation by hand, as a runbook says: new Secret, switch each Deployment, wait, delete the old.

    Unsafe on purpose: nothing checks that pods stay up, or that nothing else still reads ``old``.
    """
    started = time.monotonic()
    kubectl("create", "secret", "generic", new, "--from-literal=password=" + os.urandom(12).hex())
    for name in deployments:
        kubectl(
            "patch",
            "deployment",
            name,
            "--type=json",
            "-p",
            json.dumps([{"op": "replace", "path": SECRET_REF, "value": new}]),
        )
    for name in deployments:
        kubectl("rollout", "status", f"deployment/{name}", "--timeout=300s")
    kubectl("delete", "secret", old)
    return time.monotonic() - started


# -- more nodes -----------------------------------------------------------------------------------


@contextmanager
def extra_nodes(kube: Kube, kubeconfig: Path, count: int, log: Path) -> Iterator[list[str]]:
    """``count`` more simulated nodes (a second kubelet process), for namespaces of thousands of pods.

    On exit the nodes' pods must already be gone (the kubelet removes deleted pods): the nodes are deleted.
    """
    nodes = [f"bench-node-{i}" for i in range(1, count + 1)]
    if not nodes:
        yield nodes
        return
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, str(EXTRA_KUBELET), f"--kubeconfig={kubeconfig}", *(f"--node={n}" for n in nodes)],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        kube.wait(
            kube.core.list_node,
            lambda items: set(nodes) <= {n["metadata"]["name"] for n in items if not n["spec"].get("taints")},
            timeout=60,
            what=f"nodes {nodes} Ready",
        )
        yield nodes
    finally:
        process.terminate()
        process.wait(15)
        for node in nodes:
            try:
                kube.core.delete_node(node)
            except ApiException as error:
                if error.status != 404:
                    raise


def nodes_for(pods: int) -> int:
    """Extra nodes for ``pods`` more pods, leaving the session's own node to the other tests."""
    return -(-pods // (PODS_PER_NODE - 100))


# -- the table --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    scenario: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None


@dataclasses.dataclass
class Report:
    rows: list[Row] = dataclasses.field(default_factory=list)
    breakdowns: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    values: dict[str, float] = dataclasses.field(default_factory=dict)

    def add(self, scenario: str, measure: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(scenario, measure, value, target, met))

    def render(self) -> str:
        if not self.rows:
            return "(no benchmark completed)"
        headers = ("scenario", "measure", "measured", "target", "met")
        rows = sorted(self.rows, key=lambda r: r.scenario[:2])  # by letter, in the order each was measured
        cells = [
            (r.scenario, r.measure, r.value, r.target, "" if r.met is None else ("yes" if r.met else "NO"))
            for r in rows
        ]
        widths = [max(len(str(c[i])) for c in [headers, *cells]) for i in range(len(headers))]
        line = "  ".join("-" * w for w in widths)
        out = [line, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
        previous = None
        for cell in cells:
            shown = ("" if cell[0] == previous else cell[0], *cell[1:])
            previous = cell[0]
            out.append("  ".join(str(c).ljust(w) for c, w in zip(shown, widths, strict=True)).rstrip())
        out.append(line)
        if self.breakdowns:
            out += ["", "non-watch requests by verb and resource:", side_by_side(dict(sorted(self.breakdowns.items())))]
        if self.notes:
            out += ["", *sorted(self.notes, key=lambda note: note[:1])]
        return "\n".join(out)


def side_by_side(columns: dict[str, dict[str, int]]) -> str:
    """``{"a. operator": {"patch deployments": 10, ...}, "b. kubectl": {...}}`` as one table, a column each."""
    keys = sorted({k for c in columns.values() for k in c}, key=lambda k: (k.split(" ", 1)[-1], k))
    titles = list(columns)
    first = max([len("verb resource"), *(len(k) for k in keys)])
    width = [max(len(t), 6) for t in titles]
    rows = ["  ".join(["verb resource".ljust(first), *(t.rjust(w) for t, w in zip(titles, width, strict=True))])]
    for key in keys:
        values = [str(columns[t].get(key, "")) for t in titles]
        rows.append("  ".join([key.ljust(first), *(v.rjust(w) for v, w in zip(values, width, strict=True))]))
    totals = [str(sum(columns[t].values())) for t in titles]
    rows.append("  ".join(["total".ljust(first), *(v.rjust(w) for v, w in zip(totals, width, strict=True))]))
    return "\n".join(rows)
