"""Undoing the switches of a SecretRotation that was deleted mid-rotation.

Two ways to learn of the deletion, one outcome: no workload stays on a version
that was never proven to start.

* **Seen** (``after_deletion``): the DELETED event arrives, or a write finds the
  resource gone. The last status this operator wrote names the targets; those
  switched and not yet verified go back (``core/phases/deleted.py``).
* **Unseen** (``Orphans``): the operator was down when it happened. Every switch
  also marked its workload (``core/markers.py``); a mark whose rotation no longer
  exists is found from the workload watches once the operator is back, and judged
  there: a workload that has not rolled out on the new version goes back.

Either way nothing is deleted, and a Warning Event names what was reverted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from secretrotation.core import markers, plan
from secretrotation.core.phases import deleted
from secretrotation.shell import cluster
from secretrotation.shell.api import StepConflict, describe_error

log = logging.getLogger("secretrotation")
EventPoster = Callable[[Mapping[str, Any], plan.Event], None]
ORPHAN_GRACE = 10.0  # seconds after a mark is seen before it is judged: the SecretRotation watch may lag behind
ORPHAN_RETRY = 60.0  # seconds before a judgement the API failed is tried again
# A rolling workload's status is written every few seconds, and each write fails a revert's
# resourceVersion precondition: read it again and judge again, this many times, backing off.
REVERT_ROUNDS = 8
MAX_REVERT_BACKOFF = 5.0  # seconds
API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1"}


async def after_deletion(
    kube: cluster.Cluster, post_event: EventPoster, namespace: str, body: Mapping[str, Any], status: dict[str, Any]
) -> None:
    """Return the targets a deleted rotation switched, and never verified, to the version in use.

    Each round reads the targets by name and patches those still on the unverified
    version, each patch preconditioned on the resourceVersion it was judged from. A
    patch that meets a conflict (a controller wrote the workload since) is judged again
    from a fresh read in the next round; a target reverted in an earlier round is then
    already back, and needs nothing.
    """
    name = body["metadata"]["name"]
    targets = deleted.switched_targets(status)
    returned: list[str] = []
    left: tuple[str, ...] = ()
    try:
        for attempt in range(REVERT_ROUNDS):
            found = {
                (t.kind, t.name): await asyncio.to_thread(kube.workload, namespace, t.kind, t.name) for t in targets
            }
            judged = deleted.revert(status, found)
            left, conflict = judged.left, None
            for patch in judged.patches:
                try:
                    await asyncio.to_thread(kube.perform, namespace, name, patch)
                    returned.append(f"{patch.kind} {patch.name}")
                except StepConflict as error:
                    conflict = error
            if conflict is None:
                break
            if attempt == REVERT_ROUNDS - 1:
                raise conflict
            delay = min(0.2 * 2**attempt, MAX_REVERT_BACKOFF)
            log.info("%s/%s: %s; judging the revert again in %.1fs", namespace, name, conflict, delay)
            await asyncio.sleep(delay)
    except Exception as error:
        problem = describe_error(error)
        done = f"; {', '.join(returned)} returned" if returned else ""
        message = (
            f"could not revert after deletion: {problem}{done}; a target still switched keeps its switch mark,"
            " and is judged as if the operator had not seen the deletion"
        )
        log.warning("%s/%s: %s", namespace, name, message)
        post_event(body, plan.Event("RevertFailed", message, True))
        return
    event = deleted.reverted(status, returned, left)
    if event is not None:
        log.warning("%s/%s: %s", namespace, name, event.message)
        post_event(body, event)


class Orphans:
    """Marked workloads whose rotation may be gone: noted from the watches, judged once each, then unmarked.

    A mark of a rotation the engine tracks costs a dictionary lookup. Only a mark
    naming an unknown rotation is judged, after a grace that lets the SecretRotation
    watch catch up, from reads by name: the rotation, the workload, and, if it is to
    go back, the version it would go back to.
    """

    def __init__(
        self, kube: cluster.Cluster, post_event: EventPoster, is_live: Callable[[str, str, str], bool]
    ) -> None:
        self.cluster = kube
        self.post_event = post_event
        self.is_live = is_live
        self.pending: dict[tuple[str, str, str], markers.Switch] = {}
        self.task: asyncio.Task[None] | None = None

    def saw(self, kind: str, namespace: str, body: Mapping[str, Any]) -> None:
        """A watch event for a Deployment, StatefulSet or DaemonSet."""
        key = (namespace, kind, body["metadata"]["name"])
        switch = markers.switch_of(body)
        if switch is None or self.is_live(namespace, switch.rotation, switch.uid):
            self.pending.pop(key, None)
            return
        self.pending[key] = switch
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._judge_later(), name="secretrotation:orphans")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _judge_later(self) -> None:
        delay = ORPHAN_GRACE
        while self.pending:
            await asyncio.sleep(delay)
            failed: dict[tuple[str, str, str], markers.Switch] = {}
            while self.pending:
                (namespace, kind, name), switch = self.pending.popitem()
                if self.is_live(namespace, switch.rotation, switch.uid):
                    continue
                try:
                    await asyncio.to_thread(self._settle, namespace, kind, name, switch)
                except Exception as error:
                    problem = describe_error(error)
                    log.warning("%s/%s %s: could not judge its switch mark (%s)", namespace, kind, name, problem)
                    failed[(namespace, kind, name)] = switch
            self.pending.update({key: switch for key, switch in failed.items() if key not in self.pending})
            delay = ORPHAN_RETRY

    def _settle(self, namespace: str, kind: str, name: str, switch: markers.Switch) -> None:
        rotation = self.cluster.read_rotation(namespace, switch.rotation)
        if rotation is not None and rotation["metadata"].get("uid") == switch.uid:
            return  # alive after all: its own task takes care of its workloads
        workload = self.cluster.workload(namespace, kind, name)
        if workload is None or markers.switch_of(workload) != switch:
            return  # gone, or marked again since
        # The previous version is read only when the verdict depends on it.
        exists = markers.needs_previous(switch, workload) and self.cluster.version_exists(
            namespace, switch.credential, switch.previous or ""
        )
        verdict = markers.judge_orphan(switch, workload, previous_exists=exists)
        mark = markers.mark_of(workload)
        if verdict is markers.Orphan.UNMARK:
            self.cluster.perform(
                namespace, switch.rotation, plan.PatchWorkload(kind, name, (), unmark=mark, workload=workload)
            )
            return
        reverse = tuple(c.reversed() for c in switch.changes)
        self.cluster.perform(
            namespace, switch.rotation, plan.PatchWorkload(kind, name, reverse, unmark=mark, workload=workload)
        )
        message = (
            f"SecretRotation {switch.rotation} was deleted while the operator was down, during a rotation to "
            f"{switch.version} that this {kind} had not rolled out: returned to {switch.previous}; "
            f"nothing was deleted ({switch.version} stays)"
        )
        log.warning("%s/%s %s: %s", namespace, kind, name, message)
        involved = {**workload, "apiVersion": API_VERSIONS[kind], "kind": kind}
        self.post_event(involved, plan.Event("RevertedOnDeletion", message, warning=True))


def live_check(tracked: Mapping[tuple[str, str], Any]) -> Callable[[str, str, str], bool]:
    """Is the rotation ``namespace/name`` with this uid one the engine tracks?"""

    def is_live(namespace: str, name: str, uid: str) -> bool:
        entry = tracked.get((namespace, name))
        return entry is not None and entry.body["metadata"].get("uid") == uid

    return is_live
