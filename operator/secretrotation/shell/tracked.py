"""What the engine knows of one SecretRotation between watch events: its body, its task, its last write."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from secretrotation.core import record


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
    _busy: tuple[Mapping[str, Any], bool] | None = None  # the status last judged, and the verdict

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
    def busy(self) -> bool:
        """In flight, or waiting to collect. Asked at every watch event in the namespace, so it is
        judged once per status (statuses are replaced, never edited in place), not once per event."""
        status = self.status
        if self._busy is None or self._busy[0] is not status:
            self._busy = (status, record.read(status).busy)
        return self._busy[1]
