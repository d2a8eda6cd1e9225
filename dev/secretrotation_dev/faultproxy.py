"""A fault-injecting, request-counting reverse proxy in front of kube-apiserver.

A client (the operator, kubectl) is given a kubeconfig whose server is the proxy
(plain HTTP on loopback, same bearer token); the proxy forwards every request to
the real API server over HTTPS, verifying it with the cluster's CA, and streams
watches back chunk by chunk. On the way it can:

* answer a fraction of non-watch requests itself with 500, 503 or 429 (with
  ``Retry-After: 1``), without forwarding them (``error_rate``);
* forward a fraction of writes, let them succeed upstream, and drop the answer
  (close the connection, or answer 504), so the client cannot learn the outcome
  (``lost_write_rate``);
* cut every watch stream after a random time (``watch_cut``; watches already open when
  it is set are cut too);
* delay every request (``latency``).

kubectl (client-go) sends no credentials over plain HTTP: a proxy made with
``token=`` (or ``for_kubeconfig(..., add_token=True)``) adds the bearer token to
requests that carry none.

Every request is counted as (method, watch or not, path template, resource,
status, fault): that is how the benchmarks count the operator's non-watch
requests. The proxy runs its own event loop in its own thread, so a synchronous
test starts and stops it and changes its faults at any time; all of its public
methods are thread-safe. Faults are drawn from a seeded RNG: a single client
making requests one at a time sees the same faults on every run.

    proxy = FaultProxy.for_kubeconfig(kubeconfig, seed=7).start()
    proxy.write_kubeconfig(kubeconfig, tmp / "proxied")
    proxy.set_faults(error_rate=0.1, watch_cut=(2, 8))
    ...
    print(proxy.summary())  # {"list pods": 12, "patch deployments": 3, ...}
    proxy.stop()
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import json
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple

import aiohttp
import yaml
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ERROR_STATUSES = (500, 503, 429)
FAULT_LOG_SIZE = 1000
LostWriteMode = Literal["close", "504", "either"]
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones aiohttp recomputes for the body it sends.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_FAULT_CHECK_SECONDS = 0.25  # how often an open watch looks at the faults in force
_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")  # what aiohttp would add
_TLS_KEYS = ("certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name")
_UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
_WATCH_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
_STATUS_REASONS = {
    429: ("TooManyRequests", "the proxy throttled this request (injected fault)"),
    500: ("InternalError", "the proxy failed this request (injected fault)"),
    502: ("InternalError", "the proxy could not reach the API server"),
    403: ("Forbidden", "forbidden"),
    422: ("Invalid", "invalid"),
    503: ("ServiceUnavailable", "the proxy refused this request (injected fault)"),
    504: ("Timeout", "the proxy dropped the API server's answer (injected fault)"),
}


@dataclasses.dataclass(frozen=True)
class Faults:
    """What the proxy does to requests; every fault is off by default.

    ``watch_cut`` and ``latency`` are ranges in seconds, drawn uniformly per request.
    ``lost_write_mode`` says how an answer is dropped: the connection is closed without
    one, a 504 is sent, or either at random.
    """

    error_rate: float = 0.0
    lost_write_rate: float = 0.0
    watch_cut: tuple[float, float] | None = None
    latency: tuple[float, float] | None = None
    lost_write_mode: LostWriteMode = "either"

    def __post_init__(self) -> None:
        for name in ("error_rate", "lost_write_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {value}")
        for name in ("watch_cut", "latency"):
            window = getattr(self, name)
            if window is not None and not 0.0 <= window[0] <= window[1]:
                raise ValueError(f"{name} must be (min, max) with 0 <= min <= max, not {window}")
        if self.lost_write_mode not in ("close", "504", "either"):
            raise ValueError(f"lost_write_mode must be close, 504 or either, not {self.lost_write_mode!r}")


class RequestKey(NamedTuple):
    """One counted request. ``fault`` is "" when the request passed untouched, else
    ``error`` (answered by the proxy) or ``lost_write`` (``status`` is then what the API
    server answered, which the client never saw; on a 502 the proxy could not reach it).
    A watch is counted when it opens; its cut, if any, is in ``injected`` and ``fault_log``."""

    method: str
    watch: bool
    path: str
    resource: str
    status: int
    fault: str = ""

    @property
    def verb(self) -> str:
        return verb(self.method, self.path, watch=self.watch)


class Route(NamedTuple):
    """What a request path names: a template with names replaced, the resource and its API group."""

    template: str
    resource: str
    group: str


def route(path: str) -> Route:
    """``/apis/apps/v1/namespaces/shop/deployments/api/status`` ->
    (``/apis/apps/v1/namespaces/{ns}/deployments/{name}/status``, ``deployments/status``, ``apps``).

    Paths outside ``/api`` and ``/apis`` (``/version``, ``/openapi/v2``) and discovery paths
    name no resource (""). The legacy ``/watch/`` prefix is kept in the template.
    """
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        prefix, rest, group = parts[:2], parts[2:], ""
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        prefix, rest, group = parts[:3], parts[3:], parts[1]
    else:
        return Route("/" + "/".join(parts), "", parts[1] if parts[:1] == ["apis"] and len(parts) > 1 else "")
    template = list(prefix)
    if rest[:1] == ["watch"]:
        template.append("watch")
        rest = rest[1:]
    if not rest:
        return Route("/" + "/".join(template), "", group)
    # namespaces/{ns}/<resource>..., but namespaces/{name}/status and /finalize are the namespace's own.
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        template += ["namespaces", "{ns}"]
        rest = rest[2:]
    resource = rest[0]
    template.append(resource)
    if len(rest) >= 2:
        template.append("{name}")
    if len(rest) >= 3:
        template += rest[2:]
        resource = f"{resource}/{rest[2]}"
    return Route("/" + "/".join(template), resource, group)


def is_watch(method: str, path: str, query: Mapping[str, str]) -> bool:
    if method != "GET":
        return False
    return query.get("watch", "").lower() in ("1", "true") or "/watch/" in path


def verb(method: str, template: str, *, watch: bool) -> str:
    """The Kubernetes verb: get/list/watch/create/update/patch/delete/deletecollection."""
    named = template.endswith("/{name}") or "/{name}/" in template
    if method == "GET":
        return "watch" if watch else ("get" if named else "list")
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def status_body(code: int, message: str | None = None) -> bytes:
    """A Kubernetes ``Status`` object, as the API server sends with an error."""
    reason, default = _STATUS_REASONS.get(code, ("Unknown", "injected fault"))
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message or default,
        "reason": reason,
        "code": code,
    }
    if code == 429:
        status["details"] = {"retryAfterSeconds": 1}
    return json.dumps(status).encode()


def summarize(counts: Mapping[RequestKey, int], *, by: Literal["verb", "method"] = "verb") -> dict[str, int]:
    """Non-watch request totals by "<verb> <resource>" (or "<METHOD> <resource>"), largest first.

    Requests that name no resource (discovery, ``/version``) count as ``<verb> (discovery)``.
    """
    totals: collections.Counter[str] = collections.Counter()
    for key, count in counts.items():
        if key.watch:
            continue
        action = key.verb if by == "verb" else key.method
        totals[f"{action} {key.resource or '(discovery)'}"] += count
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def non_watch_total(counts: Mapping[RequestKey, int]) -> int:
    return sum(count for key, count in counts.items() if not key.watch)


def _forwardable(headers: Mapping[str, str]) -> CIMultiDict[str]:
    forwarded: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in _NOT_FORWARDED:
            forwarded.add(name, value)
    return forwarded


def _load_kubeconfig(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())  # JSON is YAML: both kubeconfig spellings load
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} is not a kubeconfig")
    return loaded


def _current(kubeconfig: Mapping[str, Any], kind: Literal["cluster", "user"]) -> dict[str, Any]:
    """The current context's cluster or user entry (or the only one there is)."""
    contexts = {c["name"]: c["context"] for c in kubeconfig.get("contexts") or []}
    entries = {e["name"]: e[kind] for e in kubeconfig.get(f"{kind}s") or []}
    current = kubeconfig.get("current-context")
    if current in contexts and contexts[current].get(kind) in entries:
        entry: dict[str, Any] = entries[contexts[current][kind]]
        return entry
    if len(entries) == 1:
        return next(iter(entries.values()))
    raise ValueError(f"the kubeconfig has no current context naming one of its {kind}s")


def proxied_kubeconfig(source: Path, dest: Path, server: str) -> Path:
    """Write ``source`` to ``dest`` with every cluster's server set to ``server`` and no CA.

    Users (the bearer token) and contexts are kept as they are.
    """
    config = _load_kubeconfig(source)
    for entry in config.get("clusters") or []:
        cluster = entry["cluster"]
        for key in (
            "certificate-authority",
            "certificate-authority-data",
            "insecure-skip-tls-verify",
            "tls-server-name",
        ):
            cluster.pop(key, None)
        cluster["server"] = server
    dest.write_text(yaml.safe_dump(config, sort_keys=False))
    dest.chmod(0o600)
    return dest


class FaultProxy:
    """A reverse proxy on ``http://127.0.0.1:<port>`` in front of ``upstream``. See the module docstring."""

    def __init__(
        self,
        upstream: str,
        *,
        ca_file: Path | None = None,
        ca_data: str | None = None,
        port: int = 0,
        seed: int | None = 0,
        faults: Faults | None = None,
        token: str | None = None,
    ) -> None:
        """``token``, when given, is sent as ``Authorization: Bearer`` on requests that carry no
        Authorization of their own: kubectl (client-go) sends no credentials over plain HTTP."""
        self.upstream = URL(upstream.rstrip("/"))
        self._token = token
        self._ca_file = ca_file
        self._ca_data = ca_data
        self._requested_port = port
        self.port = 0
        self._lock = threading.Lock()
        self._refusals: list[tuple[str, re.Pattern[str], int, str]] = []
        self._rng = random.Random(seed)
        self._faults = faults or Faults()
        self._counts: collections.Counter[RequestKey] = collections.Counter()
        self._injected: collections.Counter[str] = collections.Counter()
        self._fault_log: collections.deque[tuple[float, str, RequestKey]] = collections.deque(maxlen=FAULT_LOG_SIZE)
        self._open_watches = 0
        self._forced_losses = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._startup_error: BaseException | None = None

    @classmethod
    def for_kubeconfig(cls, kubeconfig: Path, *, add_token: bool = False, **options: Any) -> FaultProxy:
        """A proxy for the current context's API server, trusting the CA that kubeconfig names.

        With ``add_token``, the current user's bearer token is added to requests that carry none
        (for kubectl, which sends no credentials over plain HTTP).
        """
        config = _load_kubeconfig(kubeconfig)
        cluster = _current(config, "cluster")
        if add_token:
            options["token"] = _current(config, "user")["token"]
        ca_file = cluster.get("certificate-authority")
        ca_data = cluster.get("certificate-authority-data")
        return cls(
            cluster["server"],
            ca_file=(kubeconfig.parent / ca_file) if ca_file else None,
            ca_data=base64.b64decode(ca_data).decode() if ca_data else None,
            **options,
        )

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> FaultProxy:
        """Listen, forward, and return once requests are served. Stopped, it can start again on its port."""
        if self._thread is not None:
            raise RuntimeError("the proxy is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port or self._requested_port))
        self.port = int(sock.getsockname()[1])
        self._startup_error = None
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, args=(loop, sock, ready), name=f"faultproxy:{self.port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"the proxy did not start within {timeout}s")
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"the proxy did not start: {self._startup_error!r}") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving: open connections (watches included) are closed."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def write_kubeconfig(self, source: Path, dest: Path) -> Path:
        """``source`` (same user and token) pointed at this proxy, written to ``dest``."""
        return proxied_kubeconfig(source, dest, self.url)

    # -- faults and counts (any thread) ---------------------------------------------------

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults | None = None, /, *, seed: int | None = None, **changes: Any) -> Faults:
        """Replace the faults (``set_faults(Faults(...))``), or change some (``set_faults(error_rate=0.1)``).

        ``set_faults(Faults())`` turns every fault off. A ``seed`` restarts the RNG.
        """
        with self._lock:
            base = faults if faults is not None else self._faults
            self._faults = dataclasses.replace(base, **changes) if changes else base
            if seed is not None:
                self._rng.seed(seed)
            return self._faults

    def refuse(self, method: str, path: str, code: int, message: str) -> None:
        """Answer every ``method`` request whose path matches the regular expression ``path`` with ``code``,
        as a webhook, a policy or RBAC would refuse it (the request never reaches the API server)."""
        with self._lock:
            self._refusals.append((method.upper(), re.compile(path), code, message))

    def stop_refusing(self) -> None:
        with self._lock:
            self._refusals.clear()

    def _refusal(self, method: str, path: str) -> tuple[int, str] | None:
        with self._lock:
            for rule_method, pattern, code, message in self._refusals:
                if rule_method == method and pattern.search(path):
                    return code, message
        return None

    def lose_next_writes(self, count: int) -> None:
        """Lose the answers to the next ``count`` writes for certain (then ``lost_write_rate`` applies again)."""
        with self._lock:
            self._forced_losses = count

    def counts(self) -> collections.Counter[RequestKey]:
        """Every request since the start (or ``reset``), by method, watch, template, resource, status, fault."""
        with self._lock:
            return collections.Counter(self._counts)

    def injected(self) -> collections.Counter[str]:
        """How many faults were injected: ``error``, ``lost_write``, ``watch_cut``."""
        with self._lock:
            return collections.Counter(self._injected)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._injected.clear()
            self._fault_log.clear()

    def summary(self, *, by: Literal["verb", "method"] = "verb") -> dict[str, int]:
        """Non-watch request totals by verb (or method) and resource, largest first."""
        return summarize(self.counts(), by=by)

    def non_watch_total(self) -> int:
        return non_watch_total(self.counts())

    @property
    def open_watches(self) -> int:
        with self._lock:
            return self._open_watches

    def fault_log(self) -> list[tuple[float, str, RequestKey]]:
        """The most recent injected faults, oldest first: (``time.time()``, fault, request)."""
        with self._lock:
            return list(self._fault_log)

    def _record(self, key: RequestKey) -> None:
        with self._lock:
            self._counts[key] += 1
            if key.fault:
                self._injected[key.fault] += 1
                self._fault_log.append((time.time(), key.fault, key))

    def _count_fault(self, fault: str, key: RequestKey) -> None:
        with self._lock:
            self._injected[fault] += 1
            self._fault_log.append((time.time(), fault, key))

    def _draw(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def _lose(self, rate: float) -> bool:
        with self._lock:
            if self._forced_losses > 0:
                self._forced_losses -= 1
                return True
        return self._draw(rate)

    def _uniform(self, window: tuple[float, float]) -> float:
        with self._lock:
            return self._rng.uniform(*window)

    def _choice(self, options: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._rng.choice(options)

    # -- the event loop thread ------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup(sock))
        except BaseException as error:
            self._startup_error = error
            sock.close()
            with contextlib.suppress(Exception):
                loop.run_until_complete(self._shutdown())
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            # Handlers still waiting on an upstream (open watches) end here, not when the loop is collected.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if self.upstream.scheme != "https":
            return False
        if self._ca_file is None and self._ca_data is None:
            return ssl.create_default_context()
        return ssl.create_default_context(
            cafile=str(self._ca_file) if self._ca_file else None, cadata=self._ca_data or None
        )

    async def _startup(self, sock: socket.socket) -> None:
        connector = aiohttp.TCPConnector(limit=0, ssl=self._ssl_context())
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- requests ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        faults = self.faults
        watch = is_watch(request.method, request.path, request.query)
        template, resource, _ = route(request.path)

        def key(status: int, fault: str = "") -> RequestKey:
            return RequestKey(request.method, watch, template, resource, status, fault)

        if faults.latency is not None:
            await asyncio.sleep(self._uniform(faults.latency))
        refused = None if watch else self._refusal(request.method, request.path)
        if refused is not None:
            self._record(key(refused[0], "refused"))
            return web.Response(
                status=refused[0],
                body=status_body(refused[0], refused[1]),
                headers={"Content-Type": "application/json"},
            )
        if not watch and self._draw(faults.error_rate):
            code: int = self._choice(ERROR_STATUSES)
            self._record(key(code, "error"))
            retry = {"Retry-After": "1"} if code == 429 else {}
            return web.Response(
                status=code, body=status_body(code), headers={"Content-Type": "application/json", **retry}
            )
        lose = request.method in WRITE_METHODS and self._lose(faults.lost_write_rate)
        mode = faults.lost_write_mode
        if lose and mode == "either":
            mode = self._choice(("close", "504"))

        assert self._session is not None
        body = await request.read()
        forwarded = _forwardable(request.headers)
        if self._token and "Authorization" not in forwarded:
            forwarded["Authorization"] = f"Bearer {self._token}"
        target = self.upstream.with_path(self.upstream.path.rstrip("/") + request.raw_path, encoded=True)
        try:
            upstream = await self._session.request(
                request.method,
                target,
                headers=forwarded,
                # Add nothing the client did not send: the Kubernetes Python client sends bodies without a
                # Content-Type (the API server takes JSON), and an added Accept-Encoding would gzip answers.
                skip_auto_headers=[name for name in _AUTO_HEADERS if name not in request.headers],
                data=body if body else None,
                timeout=_WATCH_TIMEOUT if watch else _UPSTREAM_TIMEOUT,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            self._record(key(502))
            message = f"the proxy could not reach the API server: {type(error).__name__}"
            return web.Response(status=502, body=status_body(502, message), content_type="application/json")

        if watch:
            return await self._stream(request, upstream, key)
        async with upstream:
            try:
                payload = await upstream.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                self._record(key(502))
                message = f"the API server's answer broke off: {type(error).__name__}"
                return web.Response(status=502, body=status_body(502, message), content_type="application/json")
        if lose:
            self._record(key(upstream.status, "lost_write"))
            if mode == "close":
                return self._drop_connection(request)
            return web.Response(status=504, body=status_body(504), content_type="application/json")
        self._record(key(upstream.status))
        return web.Response(status=upstream.status, body=payload, headers=_forwardable(upstream.headers))

    @staticmethod
    def _drop_connection(request: web.Request) -> web.StreamResponse:
        """Close the client's connection without an answer (as a network failure would)."""
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp ends a handler whose peer is gone without writing

    async def _stream(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        key: Callable[..., RequestKey],
    ) -> web.StreamResponse:
        """Copy a watch chunk by chunk; cut it (the connection, mid-stream) when its time is up.

        The cut is scheduled from the faults in force, checked as the watch runs: a watch opened
        before ``watch_cut`` was set is cut too, and none is cut once it is unset.
        """
        loop = asyncio.get_running_loop()
        opened = key(upstream.status)
        self._record(opened)
        with self._lock:
            self._open_watches += 1
        copy: asyncio.Task[None] | None = None
        try:
            response = web.StreamResponse(status=upstream.status, headers=_forwardable(upstream.headers))
            await response.prepare(request)
            copy = asyncio.ensure_future(self._copy(upstream, response))
            cut_at: float | None = None
            while not copy.done():
                window = self.faults.watch_cut
                if window is None:
                    cut_at = None
                elif cut_at is None:
                    cut_at = loop.time() + self._uniform(window)
                if cut_at is not None and loop.time() >= cut_at:
                    copy.cancel()
                    self._count_fault("watch_cut", opened)
                    return self._drop_connection(request)
                wait = _FAULT_CHECK_SECONDS if cut_at is None else min(_FAULT_CHECK_SECONDS, cut_at - loop.time())
                await asyncio.wait({copy}, timeout=max(0.0, wait))
            if copy.exception() is not None:
                # The API server (or the client) broke off: pass the break on.
                return self._drop_connection(request)
            await response.write_eof()
            return response
        finally:
            if copy is not None and not copy.done():
                copy.cancel()
            upstream.close()
            with self._lock:
                self._open_watches -= 1

    @staticmethod
    async def _copy(upstream: aiohttp.ClientResponse, response: web.StreamResponse) -> None:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
