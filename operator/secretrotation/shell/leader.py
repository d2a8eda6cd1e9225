"""Leader election on a ``coordination.k8s.io`` Lease, so that two replicas never act at once.

``secretrotation run --leader-elect``: every replica runs ``Elector``; the one holding the
Lease runs kopf, the others stand by without a single watch. Built on the official client's
``kubernetes.leaderelection`` (its loop, and ``LeaseLock`` for the Lease requests), which
alone is not safe enough. ``GuardedLeaseLock`` and ``Elector`` add, around it:

1. **A timeout on every Lease request, and no request exception escapes.** The library's
   requests have none, and it only catches ``ApiException``: a hung connection would block
   the leader's renewal forever, and a refused connection or a timeout raises through the
   library's loop and ends its thread. Either way the leader would keep acting, unrenewed.
2. **The leader's deadline runs on the monotonic clock from when its last successful renewal
   was sent**, and a watchdog thread, not the library's loop, enforces it. The library
   restarts its ``renew_deadline`` window after each ``retry_period`` sleep and checks it only
   between requests, so with 10/8/2 s it gives up ``retry_period + renew_deadline`` (10 s,
   the whole lease) after its last renewal, or later still behind a slow request: a standby
   may already hold the Lease by then. Measured from the send, the leader stops 8 s after a
   renewal that the API server wrote after the send, and no standby takes the Lease until
   10 s after it has read that write: 2 s to spare.
3. **A leader that reads the Lease held by another identity stops at once.** The library
   keeps retrying, still acting, until its deadline.
4. **A standby takes the Lease (or re-creates a deleted one) only after it has read the same
   record unchanged for the whole lease duration, on the monotonic clock.** The library times
   this on the wall clock (``time.time``): a clock step forward on the standby's node would
   let it take over while the leader still acts; and it creates a missing Lease at once.

Losing the Lease ends the process at once with ``os._exit(1)``: no cleanup handler, no
further API request; the pod restarts as a standby, and every rotation resumes from its
status. On a graceful stop the leader, once kopf has stopped, releases the Lease (an empty
holder, as client-go does) so that a standby takes over within ``retry_period``.
"""

from __future__ import annotations

import datetime
import http.server
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from secretrotation.shell import metrics

LEASE_DURATION = 10  # seconds a standby waits, after the last renewal it read, before taking the Lease
RENEW_DEADLINE = 8  # seconds after its last successful renewal (sent) at which a leader stops
RETRY_PERIOD = 2  # seconds between attempts, to renew or to acquire
LEASE_REQUEST_TIMEOUT = (2.0, 3.0)  # seconds to connect, and to wait for an answer
STALE_STANDBY = 30.0  # seconds without a finished attempt after which a standby reports unhealthy
WATCHDOG_PERIOD = 0.2
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_LEASE_NAME = "secretrotation"

log = logging.getLogger("secretrotation.leader")

Clock = Callable[[], float]
Exit = Callable[[str], NoReturn]


@dataclass(frozen=True)
class ElectionSettings:
    namespace: str
    name: str
    identity: str
    lease_duration: int = LEASE_DURATION
    renew_deadline: int = RENEW_DEADLINE
    retry_period: int = RETRY_PERIOD


def default_identity() -> str:
    """The pod's name (the ``POD_NAME`` env, from the downward API), else hostname and process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


def default_namespace() -> str | None:
    """The ``POD_NAMESPACE`` env, else the namespace of the pod's ServiceAccount, else None."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


def exit_now(reason: str) -> NoReturn:
    """Stop acting at once: no cleanup handler runs and no further request is sent."""
    log.critical("Leader election: %s; exiting to restart as a standby.", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(1)


class _LeaseApiClient(client.ApiClient):
    """Lease requests: short timeouts, and no urllib3 retries that would multiply them."""

    def call_api(  # type: ignore[no-untyped-def]
        self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None
    ):
        return super().call_api(
            method, url, header_params, body, post_params, _request_timeout or LEASE_REQUEST_TIMEOUT
        )


def lease_api() -> client.CoordinationV1Api:
    """In a pod: its ServiceAccount. Elsewhere: $KUBECONFIG or ~/.kube/config (as the handlers log in)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    configuration.retries = 0
    return client.CoordinationV1Api(_LeaseApiClient(configuration))


def _unavailable(reason: str) -> ApiException:
    """A failed read as the library expects one: an ApiException that is not a 404."""
    return ApiException(status=0, reason=reason)


def _record_key(record: Any) -> tuple[Any, ...]:
    return (record.holder_identity, record.lease_duration, record.acquire_time, record.renew_time)


class GuardedLeaseLock:
    """The lock the library drives (``name``, ``namespace``, ``identity``, ``get``, ``create``, ``update``).

    Requests go through the library's ``LeaseLock``; this adds guards 1, 3 and 4 of the
    module's docstring and records what guard 2 (the watchdog) needs. One mutex orders
    every request with ``release``.
    """

    def __init__(self, settings: ElectionSettings, api: client.CoordinationV1Api, clock: Clock, lost: Exit) -> None:
        self.name = settings.name
        self.namespace = settings.namespace
        self.identity = settings.identity
        self._settings = settings
        self._api = api
        self._clock = clock
        self._lost = lost
        # The library's LeaseLock is untyped; it builds its own CoordinationV1Api, replaced here.
        self._inner: Any = LeaseLock(settings.name, settings.namespace, settings.identity)  # type: ignore[no-untyped-call]
        self._inner.api_instance = api
        self._mutex = threading.Lock()
        self._seen: tuple[Any, ...] | None = None  # the last record read
        self._seen_since = clock()  # when it was first read (monotonic)
        self._released = False
        self._problem: str | None = None  # the last problem logged
        self.leading = False
        self.last_renewal_sent: float | None = None  # monotonic: when the last successful write was sent
        self.last_attempt = clock()  # monotonic: when the last read finished, successful or not

    def get(self, name: str, namespace: str) -> tuple[bool, Any]:
        with self._mutex:
            if self._released:
                return False, _unavailable("released")
            try:
                found, result = self._inner.get(name, namespace)
            except Exception as error:  # the library catches ApiException only
                found, result = False, _unavailable(f"{type(error).__name__}: {error}")
            now = self._clock()
            self.last_attempt = now
            if not found:
                if not isinstance(result, ApiException) or result.status != 404:
                    self._trouble(f"cannot read the Lease {namespace}/{name}: {result.status} {result.reason}")
                return found, result
            self._trouble(None)
            key = _record_key(result)
            if key != self._seen:
                self._seen, self._seen_since = key, now
            if self.leading and result.holder_identity != self.identity:
                self._lost(f"the Lease {namespace}/{name} is now held by {result.holder_identity!r}")
            return found, result

    def create(self, name: str, namespace: str, election_record: Any) -> bool:
        with self._mutex:
            if not self.leading and not self._may_take():  # deleted while another replica held it
                return False
            created = self._write(self._inner.create, name, namespace, election_record)
            if not created:  # the library logs the API's answer with --verbose
                self._trouble(f"cannot create the Lease {namespace}/{name} (--verbose logs why)")
            return created

    def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        with self._mutex:
            if not self.leading and not self._may_take():
                return False
            return self._write(self._inner.update, name, namespace, updated_record)

    def _trouble(self, problem: str | None) -> None:
        """Log a problem once, until an attempt succeeds again (the library logs every attempt at INFO)."""
        if problem is not None and problem != self._problem:
            log.warning("Leader election: %s; retrying every %ss.", problem, self._settings.retry_period)
        self._problem = problem

    def _may_take(self) -> bool:
        """Guard 4: the Lease is free, ours already, or its last record has aged a whole lease duration."""
        if self._seen is None:
            return True
        holder = self._seen[0]
        if not holder or holder == self.identity:
            return True
        return self._clock() - self._seen_since >= self._settings.lease_duration

    def _write(self, call: Callable[[str, str, Any], bool], name: str, namespace: str, record: Any) -> bool:
        if self._released:
            return False
        sent = self._clock()
        try:
            written = bool(call(name, namespace, record))
        except Exception as error:  # the library catches ApiException only
            log.debug("Leader election: cannot write Lease %s/%s: %s", namespace, name, type(error).__name__)
            written = False
        if written:
            self.last_renewal_sent = sent
            self.leading = True
            self._problem = None
        return written

    def overdue(self) -> float | None:
        """Guard 2: seconds since the last successful renewal was sent, once past the renew deadline.

        Never waits for the mutex, which a slow request may hold for its whole timeout.
        """
        sent = self.last_renewal_sent
        if not self.leading or self._released or sent is None:
            return None
        elapsed = self._clock() - sent
        return elapsed if elapsed > self._settings.renew_deadline else None

    def release(self) -> bool:
        """Stop every further request; if this replica holds the Lease, hand it back (an empty holder).

        Call only once nothing acts any more. True when the Lease was handed back.
        """
        with self._mutex:
            self._released = True
            if not self.leading:
                return False
            try:
                lease = self._api.read_namespaced_lease(self.name, self.namespace)
                if lease.spec is None or lease.spec.holder_identity != self.identity:
                    return False
                lease.spec.holder_identity = None
                lease.spec.lease_duration_seconds = 1
                lease.spec.renew_time = datetime.datetime.now(datetime.UTC)
                self._api.replace_namespaced_lease(self.name, self.namespace, lease)
            except Exception as error:
                log.warning("Leader election: could not release the Lease (%s); a standby takes it when it expires.",
                            type(error).__name__)  # fmt: skip
                return False
            return True


class Elector:
    """Run the library's election in a thread; ``wait_leading`` until this replica holds the Lease.

    Once leading, a watchdog thread ends the process when a renewal is overdue, and so does
    the library's own ``onstopped_leading``: the caller never has to stop anything itself.
    """

    def __init__(
        self,
        settings: ElectionSettings,
        api: client.CoordinationV1Api | None = None,
        *,
        clock: Clock = time.monotonic,
        exit: Exit = exit_now,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._exit = exit
        self.lock = GuardedLeaseLock(settings, api if api is not None else lease_api(), clock, exit)
        self._leading = threading.Event()
        self._released = False
        # Untyped library calls; Config validates the timings (and calls sys.exit on bad ones).
        election_config = electionconfig.Config(  # type: ignore[no-untyped-call]
            self.lock,
            settings.lease_duration,
            settings.renew_deadline,
            settings.retry_period,
            self._started_leading,
            self._stopped_leading,
        )
        self._election: Any = leaderelection.LeaderElection(election_config)  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)

    def start(self) -> None:
        metrics.LEADER.set(0)
        log.info(
            "Leader election: standing by as %r for Lease %s/%s.",
            self.settings.identity,
            self.settings.namespace,
            self.settings.name,
        )
        self._thread.start()

    def wait_leading(self, stop: threading.Event) -> bool:
        """Block until this replica leads (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if self._leading.wait(0.2):
                return True
        return False

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    def healthy(self) -> bool:
        """For a standby's liveness probe: the election thread is alive and its attempts finish."""
        return self._thread.is_alive() and self._clock() - self.lock.last_attempt < STALE_STANDBY

    def release(self) -> bool:
        """After kopf has stopped: no more requests, and the Lease handed back if held."""
        self._released = True
        released = self.lock.release()
        metrics.LEADER.set(0)
        if released:
            log.info("Leader election: released the Lease %s/%s.", self.settings.namespace, self.settings.name)
        return released

    def _run(self) -> None:
        try:
            self._election.run()
        except BaseException:
            log.exception("Leader election: the election loop failed")
        if not self._released:
            self._exit("the election loop ended")

    def _started_leading(self) -> None:
        metrics.LEADER.set(1)
        log.info(
            "Leader election: %r now holds the Lease %s/%s.",
            self.settings.identity,
            self.settings.namespace,
            self.settings.name,
        )
        threading.Thread(target=self._watchdog, name="leader-watchdog", daemon=True).start()
        self._leading.set()

    def _stopped_leading(self) -> None:
        if not self._released:
            self._exit(f"could not renew the Lease within {self.settings.renew_deadline}s")

    def _watchdog(self) -> None:
        while True:
            time.sleep(WATCHDOG_PERIOD)
            elapsed = self.lock.overdue()
            if elapsed is not None:
                self._exit(f"no renewal of the Lease for {elapsed:.1f}s (deadline {self.settings.renew_deadline}s)")


class StandbyProbe:
    """A standby's ``/healthz`` on the liveness port (kopf serves it once this replica leads)."""

    def __init__(self, host: str, port: int, healthy: Callable[[], bool]) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = healthy()
                body = json.dumps({"leader": False, "election": "ok" if ok else "stuck"}).encode()
                self.send_response(200 if ok else 500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="standby-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
