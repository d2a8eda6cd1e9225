"""Leader election guards (shell/leader.py) around the official client's ``kubernetes.leaderelection``.

The library's own ``try_acquire_or_renew`` is driven against an in-memory Lease API with
optimistic concurrency, a fake monotonic clock and a fake wall clock: each test shows one
guard doing what the library alone does not.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import types
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import leaderelection

from secretrotation.shell import leader


class Exited(Exception):
    pass


def exit_(reason: str) -> NoReturn:
    raise Exited(reason)


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """``read``, ``create`` and ``replace`` of one Lease, with resourceVersion preconditions."""

    def __init__(self, clock: Clock | None = None, latency: float = 0.0) -> None:
        self.lease: client.V1Lease | None = None
        self.version = 0
        self.failure: BaseException | None = None
        self.calls = 0
        self.clock, self.latency = clock, latency

    def _call(self) -> None:
        self.calls += 1
        if self.clock is not None:
            self.clock.now += self.latency
        if self.failure is not None:
            raise self.failure

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> client.V1Lease:
        self._call()
        if self.lease is None:
            error = ApiException(status=404, reason="Not Found")
            error.body = json.dumps({"code": 404})
            raise error
        return copy.deepcopy(self.lease)

    def _store(self, name: str, body: client.V1Lease) -> client.V1Lease:
        self.version += 1
        stored = copy.deepcopy(body)
        stored.metadata = client.V1ObjectMeta(name=name, resource_version=str(self.version))
        self.lease = stored
        return copy.deepcopy(stored)

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease, **_: Any) -> client.V1Lease:
        self._call()
        if self.lease is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._store("lease", body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: client.V1Lease, **_: Any) -> client.V1Lease:
        self._call()
        assert self.lease is not None
        if body.metadata.resource_version != self.lease.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        return self._store(name, body)

    @property
    def holder(self) -> str | None:
        assert self.lease is not None
        return str(self.lease.spec.holder_identity) if self.lease.spec.holder_identity else None


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """The library's wall clock (``time.time`` in its module), under the test's control."""
    clock = Clock(1_700_000_000.0)
    monkeypatch.setattr(leaderelection, "time", types.SimpleNamespace(time=clock, sleep=lambda _: None))
    yield clock


def candidate(identity: str, leases: FakeLeases, clock: Clock) -> leader.Elector:
    settings = leader.ElectionSettings(namespace="ops", name="lease", identity=identity)
    return leader.Elector(settings, leases, clock=clock, exit=exit_)  # type: ignore[arg-type]


def attempt(elector: leader.Elector) -> bool:
    """One pass of the library's own acquire-or-renew, as its loops make every retry period."""
    return bool(elector._election.try_acquire_or_renew())


def test_the_timings_bound_takeover_and_leave_a_margin_between_leaders() -> None:
    # A standby first reads the last renewal up to one retry period after it was written, then
    # waits a lease duration, then tries once more per retry period: at most 14 s after a crash.
    assert leader.LEASE_DURATION + 2 * leader.RETRY_PERIOD <= 15
    # A leader stops (watchdog) before any standby may take the Lease.
    assert leader.RENEW_DEADLINE + leader.WATCHDOG_PERIOD < leader.LEASE_DURATION


def test_the_first_candidate_creates_the_lease_and_leads(wall: Clock) -> None:
    leases, clock = FakeLeases(), Clock()
    a = candidate("a", leases, clock)
    assert attempt(a)
    assert a.lock.leading and leases.holder == "a"
    assert attempt(a)  # a renewal
    assert leases.version == 2


def test_a_standby_waits_a_whole_lease_on_its_monotonic_clock_whatever_the_wall_clock_says(wall: Clock) -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = candidate("a", leases, clock), candidate("b", leases, clock)
    assert attempt(a)
    assert not attempt(b)  # b reads a's record
    clock.now += 5
    wall.now += 60  # a clock step on b's node: the library alone would take the Lease now
    assert not attempt(b)
    assert leases.holder == "a" and not b.lock.leading
    clock.now += leader.LEASE_DURATION - 5
    assert attempt(b)
    assert leases.holder == "b" and b.lock.leading


def test_every_renewal_restarts_the_standbys_wait(wall: Clock) -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = candidate("a", leases, clock), candidate("b", leases, clock)
    assert attempt(a)
    for _ in range(10):
        assert not attempt(b)
        clock.now += leader.RETRY_PERIOD
        wall.now += leader.RETRY_PERIOD
        assert attempt(a)
    assert leases.holder == "a"


def test_a_leader_that_reads_another_holder_stops_at_once(wall: Clock) -> None:
    leases, clock = FakeLeases(), Clock()
    a = candidate("a", leases, clock)
    assert attempt(a)
    assert leases.lease is not None
    leases.lease.spec.holder_identity = "intruder"
    with pytest.raises(Exited, match="held by 'intruder'"):
        attempt(a)


def test_the_leaders_deadline_runs_from_the_send_of_its_last_successful_renewal(wall: Clock) -> None:
    clock = Clock(0.0)
    leases = FakeLeases(clock, latency=1.0)  # every request takes a second to answer
    a = candidate("a", leases, clock)
    assert attempt(a)  # read at 0 (answered at 1), create sent at 1 (answered at 2)
    assert a.lock.last_renewal_sent == 1.0
    leases.failure = ApiException(status=503, reason="Service Unavailable")
    clock.now = 1.0 + leader.RENEW_DEADLINE
    assert a.lock.overdue() is None
    clock.now += 0.1
    assert a.lock.overdue() == pytest.approx(leader.RENEW_DEADLINE + 0.1)


@pytest.mark.parametrize(
    "failure",
    [
        urllib3.exceptions.MaxRetryError(None, "/lease", "connection refused"),  # type: ignore[arg-type]
        urllib3.exceptions.ReadTimeoutError(None, "/lease", "read timed out"),  # type: ignore[arg-type]
        ConnectionResetError(),
    ],
)
def test_a_request_error_is_a_failed_attempt_never_an_exception(wall: Clock, failure: BaseException) -> None:
    # The library catches ApiException only: anything else would end its loop, and a leader with it.
    leases, clock = FakeLeases(), Clock()
    a = candidate("a", leases, clock)
    assert attempt(a)
    leases.failure = failure
    clock.now += 3
    assert not attempt(a)
    assert a.lock.last_attempt == clock.now


def test_release_hands_the_lease_to_a_standby_at_once_and_sends_nothing_after(wall: Clock) -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = candidate("a", leases, clock), candidate("b", leases, clock)
    assert attempt(a)
    assert not attempt(b)
    assert a.release()
    assert leases.holder is None
    calls = leases.calls
    assert not attempt(a)
    assert leases.calls == calls
    assert attempt(b)  # no wait for an empty holder
    assert leases.holder == "b"


def test_release_leaves_a_lease_it_does_not_hold(wall: Clock) -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = candidate("a", leases, clock), candidate("b", leases, clock)
    assert attempt(a)
    assert not attempt(b)
    assert not b.release()
    assert leases.holder == "a"


def test_the_end_of_the_election_loop_ends_the_process(wall: Clock) -> None:
    a = candidate("a", FakeLeases(), Clock())

    def broken() -> None:
        raise RuntimeError("boom")

    a._election = types.SimpleNamespace(run=broken)
    with pytest.raises(Exited, match="election loop ended"):
        a._run()


def test_a_standby_answers_its_liveness_probe_while_its_attempts_finish(wall: Clock) -> None:
    healthy = [True]
    probe = leader.StandbyProbe("127.0.0.1", 0, lambda: healthy[0])
    try:
        url = f"http://127.0.0.1:{probe.port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert json.loads(response.read()) == {"leader": False, "election": "ok"}
        healthy[0] = False
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(url, timeout=5)
        assert failed.value.code == 500
    finally:
        probe.stop()


def test_a_standby_with_a_stuck_election_is_not_healthy(wall: Clock) -> None:
    clock = Clock()
    a = candidate("a", FakeLeases(), clock)
    a._thread = types.SimpleNamespace(is_alive=lambda: True)  # type: ignore[assignment]
    assert a.healthy()
    clock.now += leader.STALE_STANDBY + 1
    assert not a.healthy()


def test_a_lease_deleted_under_its_leader_is_not_recreated_by_a_standby_at_once(wall: Clock) -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = candidate("a", leases, clock), candidate("b", leases, clock)
    assert attempt(a)
    assert not attempt(b)
    leases.lease = None  # deleted by hand: a may still be acting
    clock.now += 5
    assert not attempt(b)
    assert leases.lease is None
    clock.now += leader.LEASE_DURATION - 5
    assert attempt(b)
    assert leases.holder == "b"


def test_a_problem_is_logged_once_until_an_attempt_succeeds(wall: Clock, caplog: pytest.LogCaptureFixture) -> None:
    leases, clock = FakeLeases(), Clock()
    a = candidate("a", leases, clock)
    leases.failure = ApiException(status=403, reason="Forbidden")
    for _ in range(3):
        assert not attempt(a)
    assert [r.getMessage() for r in caplog.records] == [
        "Leader election: cannot read the Lease ops/lease: 403 Forbidden; retrying every 2s."
    ]
    leases.failure = None
    assert attempt(a)
    leases.failure = ApiException(status=403, reason="Forbidden")
    assert not attempt(a)
    assert len(caplog.records) == 2


def test_the_watchdog_is_not_held_up_by_a_slow_request(wall: Clock) -> None:
    leases, clock = FakeLeases(), Clock(0.0)
    a = candidate("a", leases, clock)
    assert attempt(a)
    with a.lock._mutex:  # a renewal request in flight, waiting for its timeout
        clock.now = leader.RENEW_DEADLINE + 0.5
        assert a.lock.overdue() == pytest.approx(leader.RENEW_DEADLINE + 0.5)


def test_identity_and_namespace_default_to_the_pods(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POD_NAME", "secretrotation-7f9c-abcde")
    assert leader.default_identity() == "secretrotation-7f9c-abcde"
    monkeypatch.delenv("POD_NAME")
    assert leader.default_identity() == f"{socket.gethostname()}_{os.getpid()}"

    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setattr(leader, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
    assert leader.default_namespace() is None  # outside a pod: --leader-election-namespace is required
    (tmp_path / "namespace").write_text("secretrotation-system\n")
    assert leader.default_namespace() == "secretrotation-system"
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    assert leader.default_namespace() == "ops"
