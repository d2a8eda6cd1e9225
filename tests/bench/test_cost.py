"""Benchmarks (``make bench``): what a rotation costs in API requests, wall time, CPU and memory.

Every client talks to the API server through a counting ``FaultProxy``, so "requests"
are exactly the non-watch requests that client made (Events included; watches are
long-lived and counted apart). In one run, on the same cluster:

a. a rotation of 10 Deployments (3 replicas each, ``stableFor: 0s``) by the operator,
   from the ``requested-at`` annotation to Ready on the new version;
b. the kubectl runbook doing the same by hand (and unsafely): new Secret, patch each
   Deployment, ``rollout status`` each, delete the old Secret;
c. 20 one-Deployment rotations requested at once in one namespace, per rotation;
d. an idle operator: N settled SecretRotations and M running pods in its namespace
   (``SECRETROTATION_BENCH_ROTATIONS``, default 1000; ``SECRETROTATION_BENCH_PODS``,
   default 2000; ``SECRETROTATION_BENCH_IDLE_SECONDS``, default 60), with pod churn;
e. the rotation of (a) again under faults (10% errors, 3% lost write answers, watches cut
   every 2 to 8 s).

The targets are printed beside the measurements; a missed target does not fail the
benchmark, a rotation that never completes does. The table is printed at the end.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.costs import (
    Kubectl,
    Report,
    Sample,
    consumers,
    cpu_seconds,
    env_from,
    extra_nodes,
    generations,
    nodes_for,
    pid_of,
    request,
    rss_mb,
    runbook,
    settled,
    versions,
    wait_available,
    wait_rotations,
)
from kubetest import Kube, condition, container, deployment, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess, rotation
from kubetest.proxy import CHAOS
from secretrotation_dev.devcluster import binaries
from secretrotation_dev.faultproxy import FaultProxy, Faults

# Longer than the suite's 300 s per test: the idle scenario alone starts thousands of pods on 2 cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

TEN = [f"app-{i}" for i in range(10)]
CONCURRENT = 20
SPEC = {"generate": [{"key": "password"}], "verify": {"timeout": "5m", "stableFor": "0s"}, "retain": 0}
SETTLE_SECONDS = 3.0  # what a rotation still does after Ready (a last Event) counts towards it
ROTATION_TIMEOUT = 600.0
IDLE_ROTATIONS = int(os.environ.get("SECRETROTATION_BENCH_ROTATIONS", "1000"))
IDLE_PODS = int(os.environ.get("SECRETROTATION_BENCH_PODS", "2000"))
IDLE_SECONDS = float(os.environ.get("SECRETROTATION_BENCH_IDLE_SECONDS", "60"))
IDLE_DEPLOYMENTS = 20
QUIET_SECONDS = 10.0  # the operator counts as settled after this long without a request
CHURN_EVERY_SECONDS = 5.0  # one pod deleted (and replaced) this often during the idle window

# Targets (printed, never enforced).
MAX_REQUESTS_TEN = 38
MAX_REQUESTS_PER_CONCURRENT = 15
MAX_CPU_PER_CONCURRENT = 0.1
MAX_IDLE_RSS_MB = 150.0
MAX_FAULT_SLOWDOWN = 3.0


@pytest.fixture(scope="module")
def report() -> Iterator[Report]:
    collected = Report()
    yield collected
    print("\n\n== SecretRotation: cost of a rotation (make bench) ==\n" + collected.render())


def measure(
    kube: Kube, namespace: str, operator: OperatorProcess, proxy: FaultProxy, revisions: dict[str, int], value: str
) -> Sample:
    """Request each rotation, wait until each is Ready at its revision; the operator's requests, wall and CPU."""
    pid = pid_of(operator)
    proxy.reset()
    cpu, started = cpu_seconds(pid), time.monotonic()
    for name in revisions:
        request(kube, namespace, name, value)
    wait_rotations(kube, namespace, revisions, ROTATION_TIMEOUT, f"{len(revisions)} rotation(s) Ready")
    wall = time.monotonic() - started
    time.sleep(SETTLE_SECONDS)
    return Sample(proxy.counts(), wall, cpu_seconds(pid) - cpu)


def exactly_once(kube: Kube, namespace: str, revision: int, before: dict[str, int]) -> list[str]:
    """What shows the rotation to ``revision`` did not end exactly once (empty: it did)."""
    found = raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, "db")
    status, ready = found.get("status") or {}, condition(found, "Ready") or {}
    problems = []
    if status.get("revision") != revision or status.get("highestRevision", revision) != revision:
        problems.append(f"revision {status.get('revision')}, highest {status.get('highestRevision')}")
    if ready.get("reason") != "Rotated":
        problems.append(f"Ready {ready.get('status')} {ready.get('reason')}")
    if versions(kube, namespace, "db") != {f"db-v{revision}"}:
        problems.append(f"versions {sorted(versions(kube, namespace, 'db'))} (retain 0)")
    switched = {name: generation - before[name] for name, generation in generations(kube, namespace).items()}
    if switched != dict.fromkeys(before, 1):
        problems.append(f"template changes {switched}")
    return problems


def breakdown(sample: Sample) -> str:
    return ", ".join(f"{key} {count}" for key, count in sample.by_verb.items())


def note_failures(report: Report, scenario: str, sample: Sample) -> None:
    """Requests the API server (or the proxy) answered with an error count too: name them."""
    failed = collections.Counter[str]()
    for key, count in sample.requests.items():
        if not key.watch and (key.status >= 400 or key.fault):
            failed[f"{key.verb} {key.path} -> {key.status}{' (' + key.fault + ')' if key.fault else ''}"] += count
    if failed:
        listed = "; ".join(f"{what} x{count}" for what, count in failed.most_common())
        report.notes.append(f"{scenario}: answered with an error or a fault: {listed}")


# -- b first: a's target is relative to it ----------------------------------------------------------


def test_b_the_kubectl_runbook(
    kube: Kube, namespace: str, admin_proxy: tuple[FaultProxy, Path], tmp_path: Path, report: Report
) -> None:
    kubectl_binary = binaries.find().kubectl
    if kubectl_binary is None:
        pytest.skip("no kubectl among the control-plane binaries")
    proxy, proxied = admin_proxy
    consumers(kube, namespace, "db", TEN, replicas=3)
    kubectl = Kubectl(kubectl_binary, proxied, tmp_path / "kubectl-cache", namespace)
    kubectl("get", "deployments")  # discovery, cached: an SRE's kubectl has it already
    proxy.reset()

    wall = runbook(kubectl, TEN, old="db", new="db-v2")

    sample = Sample(proxy.counts(), wall)
    wait_available(kube, namespace, TEN, timeout=60)
    print(f"\nb. kubectl runbook: {sample.total} requests in {wall:.1f}s: {breakdown(sample)}")
    report.values["b.wall"] = wall
    report.breakdowns["b. kubectl runbook"] = sample.by_verb
    note_failures(report, "b", sample)
    report.add("b. kubectl runbook, 10 Deployments", "requests (non-watch)", str(sample.total))
    report.add("b. kubectl runbook, 10 Deployments", "wall time", f"{wall:.1f} s")


def test_a_ten_deployments_then_e_the_same_under_faults(
    kube: Kube, namespace: str, proxied_operator: tuple[OperatorProcess, FaultProxy], report: Report
) -> None:
    operator, proxy = proxied_operator
    consumers(kube, namespace, "db", TEN, replicas=3)
    kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, rotation("db", secretName="db", **SPEC)
    )
    wait_rotations(kube, namespace, {"db": 1}, ROTATION_TIMEOUT, "revision 1 (adoption) Ready")

    before = generations(kube, namespace)
    a = measure(kube, namespace, operator, proxy, {"db": 2}, "bench-a")
    a_problems = exactly_once(kube, namespace, 2, before)
    print(f"\na. operator, 10 Deployments: {a.total} requests, {a.wall:.1f}s, CPU {a.cpu:.2f}s: {breakdown(a)}")
    runbook_wall = report.values.get("b.wall")
    scenario = "a. operator, 10 Deployments x 3"
    report.values["a.wall"] = a.wall
    report.breakdowns["a. operator"] = a.by_verb
    note_failures(report, "a", a)
    report.add(scenario, "requests (non-watch)", str(a.total), f"<= {MAX_REQUESTS_TEN}", a.total <= MAX_REQUESTS_TEN)
    if runbook_wall is None:
        report.add(scenario, "wall time, request -> Ready", f"{a.wall:.1f} s", "<= 1.0x runbook (not measured)")
    else:
        ratio = a.wall / runbook_wall
        report.add(scenario, "wall time, request -> Ready", f"{a.wall:.1f} s ({ratio:.2f}x runbook)",
                   f"<= 1.0x runbook ({runbook_wall:.1f} s)", ratio <= 1.0)  # fmt: skip
    report.add(scenario, "operator CPU", f"{a.cpu:.2f} s")
    report.add(scenario, "ended exactly once", "yes" if not a_problems else f"NO: {'; '.join(a_problems)}")

    before = generations(kube, namespace)
    proxy.set_faults(CHAOS)
    try:
        e = measure(kube, namespace, operator, proxy, {"db": 3}, "bench-e")
        injected = proxy.injected()
    finally:
        proxy.set_faults(Faults())
    e_problems = exactly_once(kube, namespace, 3, before)
    print(
        f"e. under faults: {e.total} requests, {e.wall:.1f}s, CPU {e.cpu:.2f}s, faults {dict(injected)}: {breakdown(e)}"
    )
    scenario = "e. (a) under faults"
    slowdown = e.wall / a.wall
    report.breakdowns["e. under faults"] = e.by_verb
    note_failures(report, "e", e)
    report.add(scenario, "ended exactly once", "yes" if not e_problems else f"NO: {'; '.join(e_problems)}",
               "exactly once", not e_problems)  # fmt: skip
    report.add(scenario, "wall time, request -> Ready", f"{e.wall:.1f} s ({slowdown:.1f}x fault-free)",
               f"<= {MAX_FAULT_SLOWDOWN:.0f}x fault-free ({MAX_FAULT_SLOWDOWN * a.wall:.1f} s)",
               slowdown <= MAX_FAULT_SLOWDOWN)  # fmt: skip
    report.add(scenario, "requests (non-watch)", f"{e.total}, of which {injected['error']} injected errors")
    report.add(scenario, "faults injected", ", ".join(f"{k} {v}" for k, v in sorted(injected.items())))
    report.add(scenario, "operator CPU", f"{e.cpu:.2f} s")


def test_c_twenty_concurrent_rotations(
    kube: Kube, namespace: str, proxied_operator: tuple[OperatorProcess, FaultProxy], report: Report
) -> None:
    operator, proxy = proxied_operator
    names_ = [f"r-{i}" for i in range(CONCURRENT)]
    for i in range(CONCURRENT):
        kube.core.create_namespaced_secret(namespace, secret(f"s-{i}", {"password": "initial"}))
        manifest = deployment(f"d-{i}", {"containers": [container(env=env_from(f"s-{i}"))]}, replicas=1)
        kube.apps.create_namespaced_deployment(namespace, manifest)
    wait_available(kube, namespace, [f"d-{i}" for i in range(CONCURRENT)], timeout=300)
    for i, name in enumerate(names_):
        body = rotation(name, secretName=f"s-{i}", **SPEC)
        kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    wait_rotations(kube, namespace, dict.fromkeys(names_, 1), ROTATION_TIMEOUT, "20 rotations at revision 1")

    c = measure(kube, namespace, operator, proxy, dict.fromkeys(names_, 2), "bench-c")

    assert c.cpu is not None
    requests, cpu = c.total / CONCURRENT, c.cpu / CONCURRENT
    print(f"\nc. 20 concurrent: {c.total} requests, {c.wall:.1f}s, CPU {c.cpu:.2f}s: {breakdown(c)}")
    scenario = f"c. {CONCURRENT} concurrent, 1 Deployment each"
    report.breakdowns[f"c. {CONCURRENT} concurrent (all)"] = c.by_verb
    note_failures(report, "c", c)
    report.add(scenario, "requests per rotation", f"{requests:.1f}", f"<= {MAX_REQUESTS_PER_CONCURRENT}",
               requests <= MAX_REQUESTS_PER_CONCURRENT)  # fmt: skip
    report.add(scenario, "operator CPU per rotation", f"{cpu:.3f} s", f"<= {MAX_CPU_PER_CONCURRENT} s",
               cpu <= MAX_CPU_PER_CONCURRENT)  # fmt: skip
    report.add(scenario, "wall time, all 20", f"{c.wall:.1f} s")


def poll_settled(kube: Kube, namespace: str, count: int, timeout: float) -> float:
    """Wait until ``count`` rotations are Ready at revision 1 (by listing: a watch would re-check all on each event)."""
    started = time.monotonic()
    while True:
        items = raw(kube.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL)["items"]
        done = sum(settled(1, r) for r in items)
        if done >= count:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"only {done} of {count} rotations settled after {timeout:.0f}s")
        time.sleep(3)


def wait_quiet(proxy: FaultProxy, quiet: float, timeout: float) -> float:
    """Wait until the operator made no request for ``quiet`` seconds; return how long that took."""
    started, last_total, last_change = time.monotonic(), proxy.non_watch_total(), time.monotonic()
    while time.monotonic() - last_change < quiet:
        if time.monotonic() - started > timeout:
            break
        time.sleep(0.5)
        total = proxy.non_watch_total()
        if total != last_total:
            last_total, last_change = total, time.monotonic()
    return time.monotonic() - started


def test_d_an_idle_operator_costs_nothing(
    kube: Kube,
    namespace: str,
    kubeconfig: Path,
    proxied_operator: tuple[OperatorProcess, FaultProxy],
    tmp_path: Path,
    report: Report,
) -> None:
    operator, proxy = proxied_operator
    deployments = min(IDLE_DEPLOYMENTS, IDLE_ROTATIONS, IDLE_PODS) or 1
    scenario = f"d. idle: {IDLE_ROTATIONS} rotations, {IDLE_PODS} pods"
    with extra_nodes(kube, kubeconfig, nodes_for(IDLE_PODS), tmp_path / "extra-kubelet.log"):
        try:
            started = time.monotonic()
            for i in range(IDLE_ROTATIONS):
                spec = {**SPEC, "secretName": f"idle-{i}", "rotateEvery": "720h"}
                kube.custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, rotation(f"idle-{i}", **spec)
                )
            poll_settled(kube, namespace, IDLE_ROTATIONS, timeout=max(600.0, IDLE_ROTATIONS * 1.0))
            settle_rotations = time.monotonic() - started
            started = time.monotonic()
            for j in range(deployments):
                replicas = IDLE_PODS // deployments + (1 if j < IDLE_PODS % deployments else 0)
                # Pods on the version in use, as after a rotation: consumers, but nothing due.
                template = {"containers": [container(env=env_from(f"idle-{j}-v1"))]}
                kube.apps.create_namespaced_deployment(
                    namespace, deployment(f"idle-app-{j}", template, replicas=replicas)
                )
            wait_available(kube, namespace, [f"idle-app-{j}" for j in range(deployments)], timeout=1800)
            settle_pods = time.monotonic() - started
            quiet_after = wait_quiet(proxy, QUIET_SECONDS, timeout=300)

            pid = pid_of(operator)
            proxy.reset()
            cpu, started = cpu_seconds(pid), time.monotonic()
            # The first half of the window is still; in the second, a pod is deleted (and replaced) every
            # few seconds: watch events that must wake no idle rotation.
            time.sleep(IDLE_SECONDS / 2)
            still_cpu = cpu_seconds(pid) - cpu
            churn_started, deleted = time.monotonic(), 0
            pods = raw(kube.core.list_namespaced_pod, namespace, limit=50)["items"]
            while (elapsed := time.monotonic() - churn_started) < IDLE_SECONDS / 2:
                if pods and elapsed >= CHURN_EVERY_SECONDS * deleted:
                    kube.core.delete_namespaced_pod(pods.pop()["metadata"]["name"], namespace)
                    deleted += 1
                time.sleep(0.2)
            window = time.monotonic() - started
            idle = Sample(proxy.counts(), window, cpu_seconds(pid) - cpu)
            rss = rss_mb(pid)
        finally:
            kube.apps.delete_collection_namespaced_deployment(namespace)
            kube.wait(
                kube.core.list_namespaced_pod, lambda items: not items, namespace=namespace, timeout=600,
                what="the idle namespace's pods gone", describe=lambda items: f"{len(items)} pods left",
            )  # fmt: skip

    assert idle.cpu is not None
    per_minute = idle.total * 60 / window
    print(
        f"\nd. idle: {IDLE_ROTATIONS} rotations settled in {settle_rotations:.0f}s, {IDLE_PODS} pods in "
        f"{settle_pods:.0f}s, quiet after {quiet_after:.0f}s; in {window:.0f}s ({deleted} pods deleted): "
        f"{idle.total} requests, CPU {still_cpu:.2f}s still + {idle.cpu - still_cpu:.2f}s with churn, "
        f"RSS {rss:.0f} MB: {breakdown(idle)}"
    )
    report.breakdowns[f"d. idle, {window:.0f}s"] = idle.by_verb
    note_failures(report, "d", idle)
    report.add(scenario, "requests per minute", f"{per_minute:.1f}", "0", idle.total == 0)
    report.add(scenario, "operator RSS", f"{rss:.0f} MB", f"<= {MAX_IDLE_RSS_MB:.0f} MB", rss <= MAX_IDLE_RSS_MB)
    churn_cpu = idle.cpu - still_cpu
    report.add(scenario, "operator CPU per minute", f"{still_cpu * 120 / IDLE_SECONDS:.2f} s still, "
               f"{churn_cpu * 120 / IDLE_SECONDS:.2f} s with pod churn")  # fmt: skip
    report.add(scenario, "time to settle", f"rotations {settle_rotations:.0f} s, pods {settle_pods:.0f} s")
    report.notes.append(
        f"d: the first {IDLE_SECONDS / 2:.0f} s still, then {deleted} pods deleted (and replaced) over "
        f"{IDLE_SECONDS / 2:.0f} s; the operator was quiet {quiet_after:.0f} s after the pods were Available."
    )
