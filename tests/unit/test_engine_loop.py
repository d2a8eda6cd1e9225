"""The engine's loop against a fake cluster: one writer, a resource gone, and a store that follows the work.

The fake stands where ``shell/cluster.py`` stands; the planner, the store and the engine are the real ones.
A rotation here has no consumer, so it runs Idle -> Staging -> CollectingGarbage -> Idle on its own.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from secretrotation.core import names, plan, world
from secretrotation.core.world import Needs, SecretState
from secretrotation.shell import api, engine, tracked


@dataclass
class FakeCluster:
    """A namespace with no workloads, Secrets by name, and SecretRotations whose status writes can lose."""

    secrets: dict[str, SecretState] = field(default_factory=dict)
    rotations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lists: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    conflicts: int = 0  # status writes still to lose to "another writer"
    forgotten: list[str] = field(default_factory=list)
    version: int = 100

    def list_kinds(self, namespace: str, kinds: Iterable[str]) -> dict[str, tuple[tuple[dict[str, Any], ...], str]]:
        self.lists.append((namespace, tuple(kinds)))
        return {kind: ((), str(self.version)) for kind in kinds}

    def observe(
        self,
        resource: world.Resource,
        now: datetime,
        claims: dict[tuple[str, str], str],
        objects: world.NamespaceObjects,
        needs: Needs,
        *,
        fresh: bool,
        earlier: world.Observed | None = None,
    ) -> world.Observed:
        return world.Observed(
            now=now,
            objects=replace(objects, cron_jobs=() if world.Fact.CRON_JOBS in needs.facts else None),
            secrets={n: self.secrets.get(n) for n in needs.secrets},
            service_accounts={},
            mount_failures={},
            bindings=(),
            nonce="n0nce",
            fresh=fresh,
        )

    def perform(self, namespace: str, rotation: str, action: plan.Action) -> None:
        if isinstance(action, plan.CreateVersion):
            self.version += 1
            self.secrets[action.name] = SecretState(
                action.name,
                names.version_labels(rotation, action.revision),
                frozenset(r.key for r in action.spec.generate),
                True,
                "Opaque",
                str(self.version),
                {names.NONCE_ANNOTATION: action.nonce or ""},
            )

    def write_status(self, namespace: str, name: str, status: dict[str, Any], uid: str, resource_version: str) -> str:
        body = self.rotations.get((namespace, name))
        if body is None or body["metadata"]["uid"] != uid:
            raise api.ResourceGone(f"{namespace}/{name} is gone")
        if self.conflicts:
            self.conflicts -= 1
            self.version += 1
            body["metadata"]["resourceVersion"] = str(self.version)  # another writer got there first
            raise api.StatusConflict("status: the resource changed since it was read")
        if body["metadata"]["resourceVersion"] != resource_version:
            raise api.StatusConflict("status: the resource changed since it was read")
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        body["status"] = copy.deepcopy(status)
        return str(self.version)

    def forget(self, namespace: str) -> None:
        self.forgotten.append(namespace)

    def read_rotation(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = self.rotations.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None


def rotation_body(name: str, namespace: str = "shop", uid: str = "uid-1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 1, "resourceVersion": "1"},
        "spec": {
            "secretName": name,
            "generate": [{"key": "password"}],
            "targets": [{"kind": "Deployment", "name": "x"}],
        },
    }


class Events(list[tuple[str, str]]):
    def __call__(self, body: Mapping[str, Any], event: plan.Event) -> None:
        self.append((body["metadata"]["name"], event.reason))


async def settle(eng: engine.Engine, fake: FakeCluster, *keys: tuple[str, str], timeout: float = 10.0) -> None:
    """Until every rotation has written Idle with a version in use (the fake rotates nothing, so quickly)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        done = [(fake.rotations[k].get("status") or {}) for k in keys]
        if all(s.get("phase") == "Idle" and s.get("currentSecret") for s in done):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not settled: {[fake.rotations[k].get('status') for k in keys]}")


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_status_write_that_loses_to_another_writer_reads_the_resource_again_and_goes_on() -> None:
    async def scenario() -> None:
        fake = FakeCluster(conflicts=1)
        fake.rotations[("shop", "db")] = rotation_body("db")
        eng = engine.Engine(fake, Events())  # type: ignore[arg-type]
        eng.resource_changed(copy.deepcopy(fake.rotations[("shop", "db")]))
        await settle(eng, fake, ("shop", "db"))
        await eng.stop_all()

    run(scenario())


def test_a_resource_found_gone_at_a_write_stops_its_task_and_says_what_was_left() -> None:
    async def scenario() -> None:
        fake = FakeCluster()
        body = rotation_body("db")
        events = Events()
        eng = engine.Engine(fake, events)  # type: ignore[arg-type]
        eng.resource_changed(body)  # seen once, then deleted while its DELETED event was missed
        await asyncio.sleep(0.5)
        assert ("db", "VersionsLeftInPlace") in events, events
        assert ("shop", "db") not in eng.tracked
        await eng.stop_all()

    run(scenario())


def test_a_namespace_is_listed_once_for_its_rotations_and_let_go_when_they_settle() -> None:
    async def scenario() -> None:
        fake = FakeCluster()
        for name in ("db", "cache"):
            fake.rotations[("shop", name)] = rotation_body(name, uid=f"uid-{name}")
        eng = engine.Engine(fake, Events())  # type: ignore[arg-type]
        for name in ("db", "cache"):
            eng.resource_changed(copy.deepcopy(fake.rotations[("shop", name)]))
        await settle(eng, fake, ("shop", "db"), ("shop", "cache"))
        await asyncio.sleep(0.5)  # the last step's release

        fills = [kinds for _, kinds in fake.lists if set(kinds) == set(world.LISTED_KINDS)]
        assert len(fills) == 1, f"the namespace was filled {len(fills)} times: {fake.lists}"
        assert not eng.store.holds("shop"), "a namespace no rotation needs is let go"
        assert "shop" in fake.forgotten, "and the versions created there are read by name again"
        assert eng.claim_locks.get("shop") is None or not eng.claim_locks["shop"].locked()
        await eng.stop_all()

    run(scenario())


def test_switches_of_different_workloads_go_out_together_and_everything_else_in_order() -> None:
    create = plan.CreateVersion("db-v2", 2, None)  # type: ignore[arg-type]
    a, b = plan.PatchWorkload("Deployment", "a", ()), plan.PatchWorkload("Deployment", "b", ())
    delete = plan.DeleteSecret("db-v1", "7")

    assert plan.batches([create, a, b, delete]) == [[create], [a, b], [delete]]
    assert plan.batches([a, delete, b]) == [[a], [delete], [b]]


def test_a_rotation_in_flight_looks_again_within_the_resync_even_without_an_event() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    later = now + timedelta(minutes=5)

    assert tracked.next_look(None, now, in_flight=True) == tracked.IN_FLIGHT_RESYNC_SECONDS
    assert tracked.next_look(later, now, in_flight=True) == tracked.IN_FLIGHT_RESYNC_SECONDS
    assert tracked.next_look(now + timedelta(seconds=2), now, in_flight=True) == 2.0
    assert tracked.next_look(now - timedelta(seconds=2), now, in_flight=True) == 0.0
    assert tracked.next_look(None, now, in_flight=False) is None, (
        "a settled rotation costs nothing: only events wake it"
    )
    assert tracked.next_look(later, now, in_flight=False) == 300.0
