"""The shipped dashboard and alerts, proved on a real Prometheus scraping the operator during real rotations.

Debian's ``prometheus`` (``make tools``) runs on a free loopback port with a scratch config and storage,
scraping the operator every second and evaluating deploy/monitoring/secretrotation-rules.yaml every second.
The rotations: one that succeeds and then cannot collect its old version (a lone pod holds it), one whose new
pods crash and that rolls back, and one the API server refuses (a quota on Secrets: a step error). Then every
dashboard query, and every alert expression without its final comparison, must return series through
/api/v1/query; the alerts the state implies must be firing or pending in /api/v1/alerts; and once the
operator stops, the alert for its absence must be pending.
"""

from __future__ import annotations

import functools
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from kubetest import Kube, condition, container, raw, secret
from kubetest.operator import REPO, OperatorProcess
from kubetest.rotations import (
    at_revision,
    collection_blocked_at,
    consumer,
    create,
    db_rotation,
    request_rotation,
    secret_names,
    stalled_with,
    wait_rotation,
)
from secretrotation_dev.devcluster import podsim

pytestmark = pytest.mark.integration
PROMETHEUS = Path("/usr/bin/prometheus")
MONITORING = REPO / "deploy" / "monitoring"
RULES = MONITORING / "secretrotation-rules.yaml"
DASHBOARD = MONITORING / "dashboard.json"
COMPARISON = re.compile(r"^(?P<signal>.*?)\s*(?:==|!=|>=|<=|>|<)\s*-?[0-9.]+\s*$", re.DOTALL)
T = TypeVar("T")


class Prometheus:
    """A Prometheus server of our own: started on a free loopback port, stopped at teardown."""

    def __init__(self, folder: Path, metrics_port: int) -> None:
        self.folder, self.port = folder, _free_port()
        self.log = folder / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{
                "job_name": "secretrotation",
                "honor_labels": True,  # the operator's namespace label is the rotation's: keep it as it is
                "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
            }],
        }  # fmt: skip
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(PROMETHEUS), f"--config.file={self.folder / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        poll(lambda: self._ready() or None, timeout, "Prometheus ready", self.logs)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.logs()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{url}: {error.code} {error.read().decode()}") from None
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The series ``expr`` returns now: instant vectors only."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self, state: str) -> dict[str, set[str]]:
        """Alert name -> the rotations (``namespace/name``, or ``-``) it is in ``state`` for."""
        found: dict[str, set[str]] = {}
        for alert in self.api("alerts")["alerts"]:
            if alert["state"] == state:
                labels = alert["labels"]
                where = f"{labels['namespace']}/{labels['name']}" if "name" in labels else "-"
                found.setdefault(labels["alertname"], set()).add(where)
        return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(check: Callable[[], T | None], timeout: float, what: str, seen: Callable[[], object] = lambda: "") -> T:
    """``check()`` once it returns something, asked every half second for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {seen()}")
        time.sleep(0.5)


@pytest.fixture
def prometheus(operator: OperatorProcess, tmp_path: Path) -> Iterator[Prometheus]:
    if not PROMETHEUS.exists():
        pytest.fail(f"{PROMETHEUS} is missing: `make tools` installs it (Debian's prometheus package)")
    server = Prometheus(tmp_path, operator.metrics_port)
    server.start()
    yield server
    server.stop()


def panel_queries(namespace: str) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of the dashboard, its variables set as Grafana would."""
    values = {"$namespace": namespace, "$name": ".*", "$__rate_interval": "1m"}
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in values.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: a variable this test does not set: {expr}"
            queries.append((panel["title"], expr))
    return queries


def alert_signals() -> dict[str, str]:
    """Alert name -> its expression without the final threshold comparison (the whole of it if it has none)."""
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    signals = {}
    for rule in rules:
        found = COMPARISON.match(rule["expr"])
        signals[rule["alert"]] = found.group("signal") if found else rule["expr"]
    return signals


def _refused_by_quota(obj: dict[str, Any]) -> bool:
    """Stalled QuotaExceeded: a refusal keeps the rotation in the phase it was refused in."""
    return (condition(obj, "Stalled") or {}).get("reason") == "QuotaExceeded"


def _rotations(kube: Kube, namespace: str) -> None:
    """db succeeds and cannot collect db-v1; cache crashes and rolls back; token is refused by a quota."""
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    kube.core.create_namespaced_secret(namespace, secret("cache", {"password": "initial"}))
    consumer(kube, namespace, "api", "db")
    consumer(kube, namespace, "web", "cache")
    faults = f"- secret: cache-v1\n  effect: {podsim.Effect.CRASH_LOOP.value}\n"
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
    )
    password = [{"key": "password"}]
    create(kube, namespace, db_rotation(generate=password, retain=0, rotateEvery="720h"))
    create(kube, namespace, db_rotation("cache", secretName="cache", generate=password,
                                        verify={"timeout": "10m", "stableFor": "1s"}))  # fmt: skip

    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1")
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db-v1", "key": "password"}}}]
    kube.core.create_namespaced_pod(
        namespace, {"metadata": {"name": "debug-shell"}, "spec": {"containers": [container(env=env)]}}
    )
    request_rotation(kube, namespace, "db", "2")
    wait_rotation(kube, namespace, "db", collection_blocked_at(2), "collection of db-v1 blocked")
    wait_rotation(kube, namespace, "cache", stalled_with("VerificationFailed"), "rolled back", timeout=120)
    kube.wait(kube.core.list_namespaced_secret, lambda items: "cache-v1" not in {s["metadata"]["name"] for s in items},
              namespace=namespace, what="cache-v1 collected")  # fmt: skip

    kube.core.create_namespaced_secret(namespace, secret("token", {"password": "initial"}))
    count = str(len(raw(kube.core.list_namespaced_secret, namespace)["items"]))
    kube.core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "no-more-secrets"}, "spec": {"hard": {"secrets": count}}}
    )
    kube.wait_one(
        kube.core.list_namespaced_resource_quota, "no-more-secrets",
        lambda q: ((q.get("status") or {}).get("used") or {}).get("secrets") == count,
        namespace=namespace, what="quota usage counted",
    )  # fmt: skip
    create(kube, namespace, db_rotation("token", secretName="token", generate=password))
    wait_rotation(kube, namespace, "token", _refused_by_quota, "refused by the quota")
    assert {"db-v1", "db-v2"} <= secret_names(kube, namespace)


def test_every_panel_query_and_alert_expression_returns_series_on_a_real_prometheus(
    kube: Kube, namespace: str, operator: OperatorProcess, prometheus: Prometheus
) -> None:
    _rotations(kube, namespace)
    ours = f'{{namespace="{namespace}"}}'
    poll(lambda: prometheus.query(f"secretrotation_step_errors_total{ours}"), 30, "the refusal's step error scraped",
         lambda: prometheus.query(f"secretrotation_condition{ours}"))  # fmt: skip

    for title, expr in panel_queries(namespace):
        poll(functools.partial(prometheus.query, expr), 30, f"panel {title!r}: {expr}")
    for variable, match in (("namespace", "secretrotation_rotation_info"),
                            ("name", f"secretrotation_rotation_info{ours}")):  # fmt: skip
        values = prometheus.api(f"label/{variable}/values", **{"match[]": match})
        assert {"namespace": {namespace}, "name": {"db", "cache", "token"}}[variable] <= set(values), values
    finished = {s["metric"]["result"] for s in prometheus.query(f"secretrotation_rotations_finished_total{ours}")}
    assert finished == {"succeeded", "failed"}, finished
    reasons = {s["metric"]["reason"] for s in prometheus.query(f"secretrotation_failures_total{ours}")}
    assert reasons == {"VerificationFailed", "QuotaExceeded"}, reasons

    signals = alert_signals()
    for alert, signal in signals.items():
        if not signal.startswith("absent("):  # present only while the operator is not: below
            poll(functools.partial(prometheus.query, signal), 30, f"{alert}: {signal}")
    stalled = {f"{namespace}/cache", f"{namespace}/token"}
    poll(lambda: prometheus.alerts("firing").get("SecretRotationFailed") == stalled or None, 30,
         "SecretRotationFailed firing for cache and token", lambda: prometheus.alerts("firing"))  # fmt: skip
    pending = {"SecretRotationStalled": stalled, "SecretRotationCollectionBlocked": {f"{namespace}/db"}}
    poll(lambda: all(prometheus.alerts("pending").get(a) == r for a, r in pending.items()) or None, 30,
         f"pending: {pending}", lambda: prometheus.alerts("pending"))  # fmt: skip

    operator.stop()
    [absent] = [(alert, signal) for alert, signal in signals.items() if signal.startswith("absent(")]
    poll(lambda: prometheus.query(absent[1]), 30, f"{absent[0]}: {absent[1]} once the operator is gone")
    poll(lambda: "-" in prometheus.alerts("pending").get(absent[0], set()) or None, 30,
         f"{absent[0]} pending", lambda: prometheus.alerts("pending"))  # fmt: skip
