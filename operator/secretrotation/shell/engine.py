"""Drives each SecretRotation: one asyncio task per resource, stepping the planner.

A task steps when something it cares about changes (its resource, or a pod or
workload in its namespace while a rotation is in flight or a deletion is
blocked), when the planner asks for a wake-up (stability windows, deadlines,
the next scheduled rotation), and never otherwise. An idle resource costs no
API request: its task sleeps until its next rotation is due.

A step reads its namespace from the watch-fed store (``store.py``), which holds
a namespace only while a rotation there is busy, and fetches by name only the
facts the planner asks for (``Plan.needs``).

Resources carry no finalizer, so deleting one (or its namespace) never hangs
when the operator is gone. The operator is the only writer of their status, so
a task trusts the status it last wrote over a watch event that may lag behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from secretrotation.core import plan, planner, record, world
from secretrotation.core.phases import deleted
from secretrotation.core.world import Fact
from secretrotation.shell import api, cluster, metrics, reverts, steplog
from secretrotation.shell.api import describe_error
from secretrotation.shell.store import Store
from secretrotation.shell.tracked import Tracked, intent, next_look, older

Key = tuple[str, str]
EventPoster = Callable[[Mapping[str, Any], plan.Event], None]
COALESCE_SECONDS = 0.15  # a burst of watch events (a rollout) becomes one step, at most ~6 per second
MAX_ERROR_BACKOFF_SECONDS = 60.0
MAX_CONFLICT_BACKOFF_SECONDS = 30.0
REFUSED_RETRY = 300.0  # a permanent refusal is tried again this rarely, or when the spec changes
STEP_WATCHDOG = 600.0  # seconds: a step still running then is reported stuck (every request has its own timeout)


class Engine:
    def __init__(self, kube: cluster.Cluster, post_event: EventPoster) -> None:
        self.cluster = kube
        self.post_event = post_event
        self.tracked: dict[Key, Tracked] = {}
        self.claim_locks: dict[str, asyncio.Lock] = {}
        self.reverting: set[asyncio.Task[None]] = set()  # reverts after a deletion, kept until they finish
        self.store = Store()
        self.orphans = reverts.Orphans(kube, post_event, reverts.live_check(self.tracked))
        self._filling: dict[str, asyncio.Future[None]] = {}
        self._stepping: dict[str, int] = {}  # namespace -> steps under way there (the store keeps it meanwhile)

    # -- inputs from watches -------------------------------------------------------------------

    def resource_changed(self, body: Mapping[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        tracked = self.tracked.get(key)
        if tracked is None or tracked.body["metadata"].get("uid") != body["metadata"].get("uid"):
            if tracked is not None:
                self._stop(key)
            tracked = self.tracked[key] = Tracked(body=body)
            self._start(key, tracked)
        elif older(body, tracked.body):
            return  # a watch event that lags behind what a re-read already gave us
        elif tracked.refused and intent(tracked.body) == intent(body):
            tracked.body = body  # only status (our own write) changed: a refusal is not retried for that
            return
        if intent(tracked.body) != intent(body):
            tracked.urgent = True  # a request or an edit: answered at once, not after the coalescing pause
        tracked.body = body
        tracked.wake.set()

    def _start(self, key: Key, tracked: Tracked) -> None:
        tracked.task = asyncio.create_task(self._run(key), name=f"secretrotation:{key[0]}/{key[1]}")
        tracked.task.add_done_callback(lambda task: self._ended(key, tracked, task))

    def _ended(self, key: Key, tracked: Tracked, task: asyncio.Task[None]) -> None:
        """A task only ends when its resource goes; one that died of a bug is said and started again."""
        if task.cancelled() or task.exception() is None or self.tracked.get(key) is not tracked:
            return
        problem = describe_error(task.exception())  # type: ignore[arg-type]
        steplog.ResourceLog(*key, lambda: tracked.status).error(
            "the rotation's task died (%s); starting it again", problem
        )
        self._start(key, tracked)

    def resource_deleted(self, body: Mapping[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        tracked = self.tracked.get(key)
        if tracked is not None and tracked.body["metadata"].get("uid") != body["metadata"].get("uid"):
            return  # an older incarnation's deletion, reported after the new one was seen
        # The status this task last wrote is newer than the one in a DELETED event that may lag behind.
        status = dict(tracked.status) if tracked is not None else dict(body.get("status") or {})
        self._stop(key)
        metrics.forget(*key)
        self._release(key[0])
        kept = sorted(record.read(status).versions_of_interest())
        message = f"SecretRotation deleted; every version is left in place: {', '.join(kept) or 'none'}"
        self.post_event(body, plan.Event("VersionsLeftInPlace", message))
        if deleted.switched_targets(status):
            revert = reverts.after_deletion(self.cluster, self.post_event, key[0], body, status)
            task = asyncio.create_task(revert, name=f"revert:{key[0]}/{key[1]}")
            self.reverting.add(task)
            task.add_done_callback(self.reverting.discard)

    def object_changed(self, kind: str, namespace: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event for a Pod, workload, ReplicaSet, Job or ServiceAccount."""
        self.store.observe(kind, namespace, event_type, body)
        if kind in world.WORKLOAD_KINDS and event_type != "DELETED":
            self.orphans.saw(kind, namespace, body)
        for (ns, _), tracked in self.tracked.items():
            if ns != namespace or not tracked.busy or tracked.refused:
                continue
            if planner.concerns(tracked.record, kind, body, self._targets(namespace, tracked)):
                tracked.wake.set()

    def _targets(self, namespace: str, tracked: Tracked) -> dict[str, Any]:
        """The rotation's target workloads as the store holds them (for their selectors)."""
        rotation = tracked.record.rotation
        if rotation is None or not self.store.holds(namespace):
            return {}
        found = {}
        for target in rotation.targets:
            workload = self.store.get(namespace, target.kind, target.name)
            if workload is not None:
                found[f"{target.kind}/{target.name}"] = workload
        return found

    def namespace_changed(self, namespace: str) -> None:
        """A pod or workload changed: wake the rotations in that namespace that are waiting on one."""
        for (ns, _), tracked in self.tracked.items():
            if ns == namespace and tracked.busy and not tracked.refused:
                tracked.wake.set()

    def _stop(self, key: Key) -> None:
        tracked = self.tracked.pop(key, None)
        if tracked is not None and tracked.task is not None and tracked.task is not asyncio.current_task():
            tracked.task.cancel()

    def _gone(self, key: Key, tracked: Tracked) -> None:
        """The resource went while we were not told (a deletion missed by the watch): as if told now."""
        steplog.ResourceLog(*key, lambda: tracked.status).info("the resource is gone; stopping its task")
        if self.tracked.get(key, tracked) is not tracked:
            return  # a new incarnation already has its own task; this one was stopped for it
        self.tracked[key] = tracked  # resource_deleted reads the status this task last wrote
        self.resource_deleted(tracked.body)

    # -- the store: a namespace is held while a rotation there is busy ---------------------------

    async def _hold(self, namespace: str) -> None:
        """Make sure the store holds ``namespace``, filled by one LIST per kind (shared by concurrent steps)."""
        if not self.store.open(namespace):
            return
        filling = self._filling.get(namespace)
        if filling is None:
            filling = self._filling[namespace] = asyncio.ensure_future(self._fill(namespace))
            filling.add_done_callback(lambda _: self._filling.pop(namespace, None))
        await asyncio.shield(filling)

    async def _fill(self, namespace: str) -> None:
        listed = await asyncio.to_thread(self.cluster.list_kinds, namespace, world.LISTED_KINDS)
        self.store.fill(namespace, {kind: items for kind, (items, _) in listed.items()})

    async def _relist(self, namespace: str, kinds: frozenset[str]) -> None:
        """A fresh LIST of ``kinds``, which resyncs the store: what a decisive step decides from."""
        listed = await asyncio.to_thread(self.cluster.list_kinds, namespace, sorted(kinds))
        for kind, (items, version) in listed.items():
            self.store.replace(namespace, kind, items, version)

    def _release(self, namespace: str) -> None:
        """Let the store and the claim lock of a namespace go once no rotation there needs them."""
        if self._stepping.get(namespace):
            return
        if any(ns == namespace and tracked.busy for (ns, _), tracked in self.tracked.items()):
            return
        self.store.close(namespace)
        self.cluster.forget(namespace)
        if not any(ns == namespace for ns, _ in self.tracked):
            self.claim_locks.pop(namespace, None)

    async def stop_all(self) -> None:
        await self.orphans.stop()
        tasks = [t.task for t in self.tracked.values() if t.task is not None]
        self.tracked.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the loop --------------------------------------------------------------------------------

    async def _run(self, key: Key) -> None:
        failures = conflicts = 0
        say = steplog.ResourceLog(*key, lambda: tracked.status)  # fields as the status stands at each line
        while key in self.tracked:
            tracked = self.tracked[key]
            tracked.wake.clear()
            tracked.acted = False
            try:
                step = await asyncio.wait_for(self._step(key, tracked), STEP_WATCHDOG)
                failures = conflicts = 0
                tracked.refused_until = 0.0
            except api.ResourceGone:
                self._gone(key, tracked)
                return
            except api.StatusConflict as conflict:
                # Someone wrote the resource since we read it: read it again, then re-plan from that.
                conflicts += 1
                say.info("%s; reading it again", conflict)
                try:
                    current = await asyncio.to_thread(self.cluster.read_rotation, *key)
                except Exception as error:
                    say.warning("could not read it again (%s); retrying", describe_error(error))
                    await self._sleep(tracked, min(2.0**conflicts, MAX_ERROR_BACKOFF_SECONDS))
                    continue
                if current is None or current["metadata"].get("uid") != tracked.body["metadata"].get("uid"):
                    self._gone(key, tracked)
                    return
                tracked.body, tracked.written = current, None
                if conflicts > 1:
                    await asyncio.sleep(min(0.2 * 2 ** (conflicts - 2), MAX_CONFLICT_BACKOFF_SECONDS))
                continue
            except api.StepConflict as conflict:
                # The world moved under the step; re-plan from a fresh view, backing off if it keeps moving.
                conflicts += 1
                metrics.STEP_ERRORS.labels(*key).inc()
                delay = min(0.2 * 2 ** (conflicts - 1), MAX_CONFLICT_BACKOFF_SECONDS)
                say.info("%s; re-planning in %.1fs", conflict, delay)
                await asyncio.sleep(delay)
                continue
            except api.Refused as refused:
                metrics.STEP_ERRORS.labels(*key).inc()
                resource = self._resource(key, tracked)
                report = planner.refused(resource, datetime.now(UTC), refused.reason, str(refused))
                cause = {"reason": refused.reason}
                if report.requeue:  # refused while switching: the rotation fails and rolls back
                    say.warning("refused (%s) while switching: %s; rolling back", refused.reason, refused, extra=cause)
                else:
                    say.warning(
                        "refused (%s): %s; retrying in %.0fs", refused.reason, refused, REFUSED_RETRY, extra=cause
                    )
                try:
                    await self._apply(key, tracked, resource, report, tracked.resource_version)
                except Exception as error:
                    say.warning("could not report the refusal (%s)", describe_error(error))
                    await self._sleep(tracked, MAX_CONFLICT_BACKOFF_SECONDS)
                    continue
                if not report.requeue:
                    tracked.refused_until = time.monotonic() + REFUSED_RETRY
                    await self._sleep(tracked, REFUSED_RETRY)
                continue
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Backoff resets on progress: a step that acted before it failed moved the rotation on.
                failures = 1 if tracked.acted else failures + 1
                metrics.STEP_ERRORS.labels(*key).inc()
                if isinstance(error, TimeoutError):
                    error = RuntimeError(f"step still running after {STEP_WATCHDOG:.0f}s (watchdog)")
                delay = min(2.0 ** (failures - 1), MAX_ERROR_BACKOFF_SECONDS)
                problem = describe_error(error)
                say.warning("step failed (%s); retrying in %.0fs", problem, delay, extra={"reason": "StepFailed"})
                if failures == 1:
                    self.post_event(tracked.body, plan.Event("StepFailed", f"{problem}; retrying", warning=True))
                await self._sleep(tracked, delay)
                continue
            if step.requeue:
                continue
            in_flight = tracked.record.rotation is not None and not tracked.refused
            await self._sleep(tracked, next_look(step.wake_at, datetime.now(UTC), in_flight=in_flight))

    async def _sleep(self, tracked: Tracked, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracked.wake.wait(), timeout)
        if tracked.urgent:  # the resource itself changed (a request, an edit): no burst to wait for
            tracked.urgent = False
            return
        await asyncio.sleep(COALESCE_SECONDS)

    def _claims(self, namespace: str, exclude: str) -> dict[tuple[str, str], str]:
        """Workloads that other rotations in the namespace are switching right now."""
        claims = {}
        for (ns, name), tracked in self.tracked.items():
            if ns != namespace or name == exclude:
                continue
            rotation = tracked.record.rotation
            for target in rotation.targets if rotation is not None else ():
                claims[(target.kind, target.name)] = name
        return claims

    def _resource(self, key: Key, tracked: Tracked) -> world.Resource:
        namespace, name = key
        body = tracked.body
        return world.Resource(
            name=name,
            namespace=namespace,
            generation=int(body["metadata"].get("generation") or 0),
            annotations=body["metadata"].get("annotations") or {},
            spec=body.get("spec") or {},
            status=dict(tracked.status),
            uid=str(body["metadata"].get("uid") or ""),
        )

    async def _step(self, key: Key, tracked: Tracked) -> plan.Plan:
        namespace, name = key
        resource, version = self._resource(key, tracked), tracked.resource_version
        now = datetime.now(UTC)
        marked = planner.acknowledge(resource, now)  # a new request is marked before anything is read
        if marked is not None or planner.is_quiet(resource, now):
            step = marked or planner.plan(resource, planner.quiet_observation(now))
            return await self._apply(key, tracked, resource, step, version)
        self._stepping[namespace] = self._stepping.get(namespace, 0) + 1
        try:
            # Claiming workloads happens in Staging; one claim at a time per namespace.
            lock = self.claim_locks.setdefault(namespace, asyncio.Lock())
            staging = record.read(resource.status).phase is record.Phase.STAGING
            async with lock if staging else contextlib.nullcontext():
                step = await self._plan(resource, now, self._claims(namespace, name))
                return await self._apply(key, tracked, resource, step, version)
        finally:
            self._stepping[namespace] -= 1
            if not self._stepping[namespace]:
                del self._stepping[namespace]
                self._release(namespace)

    async def _plan(self, resource: world.Resource, now: datetime, claims: dict[tuple[str, str], str]) -> plan.Plan:
        """Plan from the store's view, fetching what the planner asks for until it asks for nothing more."""
        namespace = resource.namespace
        await self._hold(namespace)
        needs = planner.likely_needs(resource)
        observed: world.Observed | None = None
        fresh = False
        while True:
            if Fact.FRESH in needs.facts and not fresh:
                stale = self.store.stale_kinds(namespace, planner.fresh_kinds(resource))
                if stale:
                    steplog.log.debug(
                        "%s/%s: listing %s again (a decisive step)", namespace, resource.name, sorted(stale)
                    )
                    await self._relist(namespace, stale)
                fresh = True  # what was read by name this step stands; the objects are re-listed if stale
            view = self.store.view(namespace)
            observed = await asyncio.to_thread(
                self.cluster.observe, resource, now, claims, view, needs, fresh=fresh, earlier=observed
            )
            step = planner.plan(resource, observed)
            if not step.needs:
                return step
            if step.needs <= needs and (Fact.FRESH not in step.needs.facts or fresh):
                raise RuntimeError(f"the planner asked again for what it was given: {step.needs}")
            needs = needs | step.needs

    async def _apply(
        self, key: Key, tracked: Tracked, resource: world.Resource, step: plan.Plan, version: str
    ) -> plan.Plan:
        """Perform the actions, then write the status, only over the resourceVersion the step planned from."""
        namespace, name = key
        steplog.decided(namespace, name, step)
        for batch in plan.batches(step.actions):
            # Switches of different workloads go out together; everything else in order, one by one.
            done = await asyncio.gather(
                *(asyncio.to_thread(self.cluster.perform, namespace, name, a) for a in batch), return_exceptions=True
            )
            failed = [error for error in done if isinstance(error, BaseException)]
            for written in done:
                if written is not None and not isinstance(written, BaseException):
                    tracked.acted = True
                    self.store.remember(written[0], namespace, written[1])  # never plan from a view older than this
            if failed:
                raise failed[0]
            tracked.acted = True
        if step.status != resource.status:
            uid = str(tracked.body["metadata"].get("uid") or "")
            tracked.written_version = await asyncio.to_thread(
                self.cluster.write_status, namespace, name, step.status, uid, version
            )
            tracked.written = step.status
            before, after = record.read(resource.status), record.read(step.status)
            if before.rotation is not None and after.rotation is None:
                self.namespace_changed(namespace)  # its workloads are free: wake whoever waits for them
        for event in step.events:
            self.post_event(tracked.body, event)
        steplog.reported(namespace, name, resource.status, step)
        metrics.update(namespace, name, resource.status, step, time.time(), tracked.body)
        return step
