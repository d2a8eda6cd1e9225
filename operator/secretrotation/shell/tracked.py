"""What the engine knows of one SecretRotation between watch events: its body, its task, its last write."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from secretrotation.core import record

# A rotation in flight looks again at least this often even without a watch event: a safety net for an
# event that never came (a resync, as controllers do). It plans from the store, so it costs no LIST, and
# a rotation is in flight for at most verify.timeout: what waiting costs stays bounded.
IN_FLIGHT_RESYNC_SECONDS = 10.0


def intent(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the user controls on a SecretRotation: a change here is worth a retry, a status change is not."""
    meta = body.get("metadata") or {}
    return meta.get("generation"), dict(meta.get("annotations") or {}), meta.get("uid")


def older(body: Mapping[str, Any], than: Mapping[str, Any]) -> bool:
    mine, theirs = (str(b["metadata"].get("resourceVersion") or "") for b in (body, than))
    return mine.isdigit() and theirs.isdigit() and int(mine) < int(theirs)


@dataclass
class Tracked:
    body: Mapping[str, Any]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    written: dict[str, Any] | None = None  # the status this task last wrote
    task: asyncio.Task[None] | None = None
    refused_until: float = 0.0  # time.monotonic() before which only a change to the resource itself wakes it
    written_version: str = ""  # the resourceVersion our last status write returned
    acted: bool = False  # the current step performed an action: progress, even if it then failed
    urgent: bool = False  # woken by a change to the resource itself: step at once, no coalescing
    _read: tuple[Mapping[str, Any], record.Record] | None = None  # the status last read, and what it says

    @property
    def resource_version(self) -> str:
        """The newest resourceVersion known: the watch's, or our own last write's if that is newer."""
        seen = str(self.body["metadata"].get("resourceVersion") or "")
        if self.written_version.isdigit() and seen.isdigit() and int(self.written_version) > int(seen):
            return self.written_version
        return seen or self.written_version

    @property
    def refused(self) -> bool:
        return time.monotonic() < self.refused_until

    @property
    def status(self) -> Mapping[str, Any]:
        return self.written if self.written is not None else (self.body.get("status") or {})

    @property
    def record(self) -> record.Record:
        """The status, read. Asked at every watch event in the namespace, so it is read once per
        status (statuses are replaced, never edited in place), not once per event. Do not edit it."""
        status = self.status
        if self._read is None or self._read[0] is not status:
            self._read = (status, record.read(status))
        return self._read[1]

    @property
    def busy(self) -> bool:
        """In flight, or waiting to collect."""
        return self.record.busy


def next_look(wake_at: datetime | None, now: datetime, *, in_flight: bool) -> float | None:
    """Seconds until a step looks again without a watch event (None: only an event wakes it).

    A rotation in flight looks at least every ``IN_FLIGHT_RESYNC_SECONDS``: an event that never
    came costs seconds, not the whole timeout. A settled one (idle, or waiting for a blocked
    collection, which may last days) waits for its timer or an event: waiting costs nothing.
    """
    timeout = max(0.0, (wake_at - now).total_seconds()) if wake_at is not None else None
    if in_flight:
        return IN_FLIGHT_RESYNC_SECONDS if timeout is None else min(timeout, IN_FLIGHT_RESYNC_SECONDS)
    return timeout
