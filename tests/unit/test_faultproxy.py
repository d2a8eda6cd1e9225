"""The fault proxy against a tiny fake API server on loopback: forwarding, counting, every fault.

No Kubernetes here. The fake upstream records every request it receives, so each
test can tell a fault the proxy made up (never forwarded) from one it applied to
an answer (forwarded, answer dropped).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from secretrotation_dev.faultproxy import (
    ERROR_STATUSES,
    FaultProxy,
    Faults,
    RequestKey,
    Route,
    non_watch_total,
    route,
    summarize,
    verb,
)

TOKEN = "Bearer test-token"
WATCH_EVENT_INTERVAL = 0.02


class FakeApiServer:
    """Answers like an API server: lists, named reads, writes, and endless watches."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []  # method, path?query, headers, body
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _, _ in self.received if m != "GET"]

    def start(self) -> FakeApiServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, ssl_context=self.ssl_context).start()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append((request.method, request.path_qs, dict(request.headers), body))
        if request.query.get("watch") in ("1", "true"):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError):  # ends only when the reader goes away
                for number in range(100_000):
                    event = {"type": "ADDED", "object": {"metadata": {"name": f"pod-{number}"}}}
                    await response.write(json.dumps(event).encode() + b"\n")
                    await asyncio.sleep(WATCH_EVENT_INTERVAL)
            return response
        if request.method == "GET":
            answer = {"kind": "PodList", "items": [], "seen": {"path": request.path_qs}}
            return web.json_response(answer, headers={"X-Upstream": "yes"})
        status = 201 if request.method == "POST" else 200
        return web.json_response({"kind": "Pod", "written": request.method}, status=status)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    yield server
    server.stop()


@pytest.fixture
def proxy(upstream: FakeApiServer) -> Iterator[FaultProxy]:
    upstream.received.clear()
    with FaultProxy(upstream.url, seed=1) as running:
        yield running


def call(
    proxy: FaultProxy, method: str, path: str, body: bytes | None = None, timeout: float = 5
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)
    try:
        headers = {"Authorization": TOKEN, "Content-Type": "application/json"}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def open_watch(proxy: FaultProxy, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    connection.request("GET", path, headers={"Authorization": TOKEN})
    return connection, connection.getresponse()


def read_until_broken(response: http.client.HTTPResponse, limit: float) -> tuple[int, float, bool]:
    """Read events until the stream breaks or ``limit`` seconds pass: (events, seconds, broken)."""
    started, events = time.monotonic(), 0
    while time.monotonic() - started < limit:
        try:
            line = response.readline()
        except (http.client.IncompleteRead, ConnectionError, OSError):
            return events, time.monotonic() - started, True
        if not line:
            return events, time.monotonic() - started, True
        events += 1
    return events, time.monotonic() - started, False


PODS = "/api/v1/namespaces/shop/pods"


# -- routes and verbs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/namespaces/shop/pods", Route("/api/v1/namespaces/{ns}/pods", "pods", "")),
        ("/api/v1/namespaces/shop/pods/api-1", Route("/api/v1/namespaces/{ns}/pods/{name}", "pods", "")),
        (
            "/apis/apps/v1/namespaces/shop/deployments/api/status",
            Route("/apis/apps/v1/namespaces/{ns}/deployments/{name}/status", "deployments/status", "apps"),
        ),
        (
            "/apis/rotation.sre.dev/v1alpha1/namespaces/shop/secretrotations",
            Route(
                "/apis/rotation.sre.dev/v1alpha1/namespaces/{ns}/secretrotations", "secretrotations", "rotation.sre.dev"
            ),
        ),
        ("/api/v1/namespaces/shop", Route("/api/v1/namespaces/{name}", "namespaces", "")),
        ("/api/v1/namespaces/shop/finalize", Route("/api/v1/namespaces/{name}/finalize", "namespaces/finalize", "")),
        ("/api/v1/namespaces", Route("/api/v1/namespaces", "namespaces", "")),
        ("/api/v1/nodes/n1", Route("/api/v1/nodes/{name}", "nodes", "")),
        ("/api/v1/watch/namespaces/shop/pods", Route("/api/v1/watch/namespaces/{ns}/pods", "pods", "")),
        ("/apis/apps/v1", Route("/apis/apps/v1", "", "apps")),
        ("/apis", Route("/apis", "", "")),
        ("/version", Route("/version", "", "")),
    ],
)
def test_paths_are_counted_by_template_and_resource(path: str, expected: Route) -> None:
    assert route(path) == expected


@pytest.mark.parametrize(
    ("method", "template", "watch", "expected"),
    [
        ("GET", "/api/v1/namespaces/{ns}/pods", False, "list"),
        ("GET", "/api/v1/namespaces/{ns}/pods", True, "watch"),
        ("GET", "/api/v1/namespaces/{ns}/pods/{name}", False, "get"),
        ("POST", "/api/v1/namespaces/{ns}/events", False, "create"),
        ("PUT", "/api/v1/namespaces/{ns}/pods/{name}/status", False, "update"),
        ("PATCH", "/apis/apps/v1/namespaces/{ns}/deployments/{name}", False, "patch"),
        ("DELETE", "/api/v1/namespaces/{ns}/secrets/{name}", False, "delete"),
        ("DELETE", "/api/v1/namespaces/{ns}/secrets", False, "deletecollection"),
    ],
)
def test_verbs(method: str, template: str, watch: bool, expected: str) -> None:
    assert verb(method, template, watch=watch) == expected


# -- forwarding and counting ---------------------------------------------------------------------


def test_requests_are_forwarded_with_their_headers_query_and_body(proxy: FaultProxy, upstream: FakeApiServer) -> None:
    status, headers, body = call(proxy, "GET", PODS + "?labelSelector=app%3Dapi&limit=5")

    assert status == 200
    assert headers["X-Upstream"] == "yes"
    assert json.loads(body)["seen"]["path"] == PODS + "?labelSelector=app%3Dapi&limit=5"
    method, path_qs, sent, _ = upstream.received[-1]
    assert (method, path_qs) == ("GET", PODS + "?labelSelector=app%3Dapi&limit=5")
    assert sent["Authorization"] == TOKEN

    status, _, body = call(proxy, "PATCH", PODS + "/api-1", b'{"metadata":{"labels":{"a":"b"}}}')
    assert (status, json.loads(body)) == (200, {"kind": "Pod", "written": "PATCH"})
    assert upstream.received[-1][3] == b'{"metadata":{"labels":{"a":"b"}}}'


def test_nothing_is_added_to_what_the_client_sent(proxy: FaultProxy, upstream: FakeApiServer) -> None:
    """The Kubernetes Python client posts JSON without a Content-Type: an added one is a 415 from the API server."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        connection.putrequest("POST", "/api/v1/namespaces/shop/secrets", skip_accept_encoding=True)
        connection.putheader("Content-Length", "2")
        connection.endheaders(b"{}")
        assert connection.getresponse().status == 201
    finally:
        connection.close()

    sent = {name.lower() for name in upstream.received[-1][2]}
    assert sent.isdisjoint({"content-type", "accept", "accept-encoding", "user-agent"}), sent


def test_a_token_is_added_only_to_requests_without_credentials(upstream: FakeApiServer) -> None:
    """kubectl sends no credentials over plain HTTP: the proxy can add them."""
    upstream.received.clear()
    with FaultProxy(upstream.url, token="from-proxy") as proxy:
        call(proxy, "GET", PODS)  # sends its own Authorization
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        connection.request("GET", PODS)
        connection.getresponse().read()
        connection.close()
    assert [headers.get("Authorization") for _, _, headers, _ in upstream.received] == [TOKEN, "Bearer from-proxy"]


def test_every_request_is_counted_and_summarized_by_verb_and_resource(proxy: FaultProxy) -> None:
    call(proxy, "GET", PODS)
    call(proxy, "GET", PODS)
    call(proxy, "GET", PODS + "/api-1")
    call(proxy, "POST", "/api/v1/namespaces/shop/events", b"{}")
    call(proxy, "PATCH", "/apis/apps/v1/namespaces/other/deployments/api", b"{}")
    connection, response = open_watch(proxy, PODS + "?watch=1")
    response.readline()
    connection.close()

    counts = proxy.counts()
    assert counts[RequestKey("GET", False, "/api/v1/namespaces/{ns}/pods", "pods", 200)] == 2
    assert counts[RequestKey("POST", False, "/api/v1/namespaces/{ns}/events", "events", 201)] == 1
    assert counts[RequestKey("GET", True, "/api/v1/namespaces/{ns}/pods", "pods", 200)] == 1
    assert proxy.summary() == {"list pods": 2, "create events": 1, "get pods": 1, "patch deployments": 1}
    assert proxy.summary(by="method") == {"GET pods": 3, "PATCH deployments": 1, "POST events": 1}
    assert proxy.non_watch_total() == 5 == non_watch_total(counts)
    assert summarize(counts) == proxy.summary()

    proxy.reset()
    assert proxy.counts() == collections.Counter()
    assert proxy.non_watch_total() == 0


def test_a_watch_streams_chunk_by_chunk(proxy: FaultProxy) -> None:
    """The fake upstream never ends a watch: any event read proves nothing was buffered to the end."""
    connection, response = open_watch(proxy, PODS + "?watch=true")
    try:
        events, seconds, broken = read_until_broken(response, limit=0.5)
    finally:
        connection.close()
    assert not broken, "no fault configured: the watch must not be cut"
    assert events >= 5, f"only {events} events in {seconds:.2f}s"
    assert proxy.non_watch_total() == 0


def test_an_unreachable_api_server_is_a_502_status(upstream: FakeApiServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with FaultProxy(f"http://127.0.0.1:{closed_port}") as proxy:
        status, _, body = call(proxy, "GET", PODS)
    assert status == 502
    assert json.loads(body)["kind"] == "Status"


# -- faults ----------------------------------------------------------------------------------------


def test_injected_errors_are_answered_by_the_proxy_without_forwarding(
    proxy: FaultProxy, upstream: FakeApiServer
) -> None:
    proxy.set_faults(error_rate=1.0)
    answers = [call(proxy, method, PODS, b"{}" if method == "POST" else None) for method in ["GET", "POST"] * 15]

    assert upstream.received == [], "an injected error is never forwarded"
    assert {status for status, _, _ in answers} == set(ERROR_STATUSES)
    for status, headers, body in answers:
        reply = json.loads(body)
        assert (reply["kind"], reply["code"], reply["status"]) == ("Status", status, "Failure")
        if status == 429:
            assert headers["Retry-After"] == "1"
            assert reply["details"]["retryAfterSeconds"] == 1
        else:
            assert "Retry-After" not in headers
    assert proxy.injected()["error"] == 30
    assert [fault for _, fault, _ in proxy.fault_log()] == ["error"] * 30
    assert sum(n for key, n in proxy.counts().items() if key.fault == "error") == 30


def test_the_error_rate_is_a_fraction_and_seeded(upstream: FakeApiServer) -> None:
    def statuses(seed: int) -> list[int]:
        with FaultProxy(upstream.url, seed=seed, faults=Faults(error_rate=0.3)) as proxy:
            return [call(proxy, "GET", PODS)[0] for _ in range(100)]

    first = statuses(7)
    errors = sum(status != 200 for status in first)
    assert 15 <= errors <= 45, errors
    assert statuses(7) == first, "the same seed injects the same faults"


def test_watches_are_never_answered_with_an_injected_error(proxy: FaultProxy) -> None:
    proxy.set_faults(error_rate=1.0)
    connection, response = open_watch(proxy, PODS + "?watch=1")
    try:
        assert response.status == 200
        assert json.loads(response.readline())["type"] == "ADDED"
    finally:
        connection.close()


def test_a_lost_write_reaches_the_api_server_but_the_connection_closes_without_an_answer(
    proxy: FaultProxy, upstream: FakeApiServer
) -> None:
    proxy.set_faults(lost_write_rate=1.0, lost_write_mode="close")

    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, http.client.IncompleteRead)):
        call(proxy, "POST", "/api/v1/namespaces/shop/secrets", b'{"metadata":{"name":"db-v2"}}')

    assert upstream.writes() == [("POST", "/api/v1/namespaces/shop/secrets")], "the write happened upstream"
    assert proxy.counts() == {
        RequestKey("POST", False, "/api/v1/namespaces/{ns}/secrets", "secrets", 201, "lost_write"): 1
    }


def test_a_lost_write_can_be_answered_with_504(proxy: FaultProxy, upstream: FakeApiServer) -> None:
    proxy.set_faults(lost_write_rate=1.0, lost_write_mode="504")

    answers = [call(proxy, method, PODS + "/api-1", b"{}")[0] for method in ("PUT", "PATCH", "DELETE")]

    assert answers == [504, 504, 504]
    assert upstream.writes() == [(m, PODS + "/api-1") for m in ("PUT", "PATCH", "DELETE")]
    assert proxy.injected()["lost_write"] == 3


def test_the_next_writes_can_be_lost_for_certain(proxy: FaultProxy, upstream: FakeApiServer) -> None:
    proxy.set_faults(lost_write_mode="504")
    proxy.lose_next_writes(2)

    answers = [call(proxy, method, PODS, b"{}")[0] for method in ("GET", "POST", "POST", "POST")]

    assert answers == [200, 504, 504, 201], "a read is not a write; the third write is answered again"
    assert len(upstream.writes()) == 3


def test_reads_are_never_lost(proxy: FaultProxy, upstream: FakeApiServer) -> None:
    proxy.set_faults(lost_write_rate=1.0)
    assert [call(proxy, "GET", PODS)[0] for _ in range(5)] == [200] * 5
    assert proxy.injected() == collections.Counter()


def test_either_mode_drops_answers_both_ways(proxy: FaultProxy, upstream: FakeApiServer) -> None:
    proxy.set_faults(lost_write_rate=1.0)  # the default mode: "either"
    outcomes = set()
    for _ in range(12):
        try:
            outcomes.add(str(call(proxy, "DELETE", PODS + "/api-1")[0]))
        except (http.client.RemoteDisconnected, ConnectionError, http.client.IncompleteRead):
            outcomes.add("closed")
    assert outcomes == {"504", "closed"}
    assert len(upstream.writes()) == 12


def test_every_watch_is_cut_within_its_window(proxy: FaultProxy) -> None:
    proxy.set_faults(watch_cut=(0.2, 0.3))
    for _ in range(2):
        connection, response = open_watch(proxy, PODS + "?watch=1")
        try:
            events, seconds, broken = read_until_broken(response, limit=2.0)
        finally:
            connection.close()
        assert broken, "the watch was not cut"
        assert 0.15 <= seconds <= 0.6, seconds
        assert events >= 3, "events flow until the cut"
    assert proxy.injected()["watch_cut"] == 2
    assert [(fault, key.path) for _, fault, key in proxy.fault_log()] == [
        ("watch_cut", "/api/v1/namespaces/{ns}/pods")
    ] * 2
    assert proxy.open_watches == 0


def test_a_watch_opened_before_the_cut_was_set_is_cut_too(proxy: FaultProxy) -> None:
    connection, response = open_watch(proxy, PODS + "?watch=1")
    try:
        response.readline()
        proxy.set_faults(watch_cut=(0.1, 0.2))
        _events, seconds, broken = read_until_broken(response, limit=2.0)
    finally:
        connection.close()
    assert broken, "a watch already open when watch_cut was set was never cut"
    assert seconds <= 0.6, seconds


def test_no_watch_is_cut_once_the_cut_is_unset(proxy: FaultProxy) -> None:
    proxy.set_faults(watch_cut=(0.4, 0.4))
    connection, response = open_watch(proxy, PODS + "?watch=1")
    try:
        response.readline()
        proxy.set_faults(Faults())
        _events, seconds, broken = read_until_broken(response, limit=0.8)
    finally:
        connection.close()
    assert not broken, f"cut after {seconds:.2f}s although watch_cut was unset"
    assert proxy.injected()["watch_cut"] == 0


def test_latency_delays_every_request(proxy: FaultProxy) -> None:
    proxy.set_faults(latency=(0.15, 0.2))
    started = time.monotonic()
    assert call(proxy, "GET", PODS)[0] == 200
    assert time.monotonic() - started >= 0.15


def test_faults_change_at_runtime_and_turn_off(proxy: FaultProxy) -> None:
    assert call(proxy, "GET", PODS)[0] == 200
    proxy.set_faults(Faults(error_rate=1.0))
    assert call(proxy, "GET", PODS)[0] in ERROR_STATUSES
    proxy.set_faults(Faults())
    assert call(proxy, "GET", PODS)[0] == 200
    assert proxy.faults == Faults()


def test_fault_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        Faults(error_rate=1.5)
    with pytest.raises(ValueError, match="watch_cut"):
        Faults(watch_cut=(3.0, 1.0))


# -- https and kubeconfigs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA): (cert, key)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_an_https_api_server_is_verified_with_the_ca_from_the_kubeconfig(
    tls: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = tls
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = FakeApiServer(context).start()
    try:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "local",
            "clusters": [{"name": "local", "cluster": {"server": server.url, "certificate-authority": str(cert)}}],
            "users": [{"name": "admin", "user": {"token": "secret-token"}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        }))  # fmt: skip
        with FaultProxy.for_kubeconfig(kubeconfig, add_token=True) as proxy:
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
            connection.request("GET", PODS)  # no credentials, as kubectl over plain HTTP
            assert connection.getresponse().status == 200
            connection.close()
            assert server.received[-1][2]["Authorization"] == "Bearer secret-token"
            proxied = yaml.safe_load(proxy.write_kubeconfig(kubeconfig, tmp_path / "proxied").read_text())
        with FaultProxy(server.url) as untrusting:  # the system CAs do not know this certificate
            assert call(untrusting, "GET", PODS)[0] == 502
    finally:
        server.stop()

    assert proxied["clusters"] == [{"name": "local", "cluster": {"server": proxy.url}}]
    assert proxied["users"] == [{"name": "admin", "user": {"token": "secret-token"}}]
    assert proxied["current-context"] == "local"


def test_a_stopped_proxy_starts_again_on_its_port(upstream: FakeApiServer) -> None:
    proxy = FaultProxy(upstream.url).start()
    port = proxy.port
    proxy.stop()
    with pytest.raises(OSError):
        call(proxy, "GET", PODS, timeout=1)
    proxy.start()
    try:
        assert proxy.port == port
        assert call(proxy, "GET", PODS)[0] == 200
    finally:
        proxy.stop()


def test_a_refusal_rule_answers_matching_requests_itself_and_lets_the_rest_through(
    proxy: FaultProxy, upstream: FakeApiServer
) -> None:
    proxy.refuse("PATCH", r"/deployments/api$", 403, 'admission webhook "deny.example.com" denied the request')
    refused = call(proxy, "PATCH", "/apis/apps/v1/namespaces/shop/deployments/api", b"[]")
    passed = call(proxy, "PATCH", "/apis/apps/v1/namespaces/shop/deployments/web", b"[]")
    proxy.stop_refusing()
    after = call(proxy, "PATCH", "/apis/apps/v1/namespaces/shop/deployments/api", b"[]")

    assert refused[0] == 403 and b"denied the request" in refused[2], refused
    assert (passed[0], after[0]) == (200, 200)
    assert proxy.injected()["refused"] == 1
    assert len(upstream.received) == 2, "a refused request never reaches the API server"
