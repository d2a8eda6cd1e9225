"""What the operator says about each rotation's steps: every decision at the level it deserves.

* WARNING: a failure, a rollback, a blocked collection, a stall (every Warning Event the
  step posts, a phase change into RollingBack, and the Stalled condition turning True);
* INFO: a phase change, with the reason and message of the condition that explains it,
  and every Normal Event;
* DEBUG (``--verbose``): each step's decision, whether or not it changed anything.

Every line about a rotation carries structured fields (``extra``): ``namespace``, the
resource name under ``NAME_FIELD`` (``LogRecord`` reserves ``name`` for the logger's;
the JSON formatter writes it out as ``name``), ``revision`` (the one in flight, else the
one in use), ``phase`` and ``reason``. Messages come from status and Events, which never
hold a secret value; nothing here reads a Secret's data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from secretrotation.core import plan, record

log = logging.getLogger("secretrotation")
NAME_FIELD = "rotation"


def fields(namespace: str, name: str, status: Mapping[str, Any], reason: str | None = None) -> dict[str, Any]:
    """The structured fields of a line about one rotation, as ``status`` stands; ``reason`` defaults to Ready's."""
    rec = record.read(status)
    ready = rec.condition("Ready") or {}
    return {
        "namespace": namespace,
        NAME_FIELD: name,
        "revision": rec.rotation.revision if rec.rotation is not None else rec.revision,
        "phase": rec.phase.value,
        "reason": reason if reason is not None else str(ready.get("reason") or ""),
    }


class ResourceLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Lines about one rotation: prefixed ``namespace/name:``, with its fields as ``status()`` stands then."""

    def __init__(self, namespace: str, name: str, status: Callable[[], Mapping[str, Any]]) -> None:
        super().__init__(log, {})
        self.namespace, self.resource_name, self.status = namespace, name, status

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        given = dict(kwargs.get("extra") or {})
        kwargs["extra"] = fields(self.namespace, self.resource_name, self.status(), given.pop("reason", None)) | given
        return f"{self.namespace}/{self.resource_name}: {msg}", kwargs


def decided(namespace: str, name: str, step: plan.Plan) -> None:
    """DEBUG: what a step decided (its phase, Ready's reason and message, its actions, when it looks next)."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    ready: Mapping[str, Any] = record.read(step.status).condition("Ready") or {}
    actions = ", ".join(type(a).__name__ for a in step.actions) or "no action"
    wake = step.wake_at.isoformat() if step.wake_at else "on a watch event"
    say = ResourceLog(namespace, name, lambda: step.status)
    say.debug("%s (%s: %s); %s; next look %s", step.status.get("phase"), ready.get("reason"), ready.get("message"),
              actions, wake)  # fmt: skip


def reported(namespace: str, name: str, before_status: Mapping[str, Any], step: plan.Plan) -> None:
    """INFO and WARNING: what a step that was carried out changed (its Events, its phase, a stall)."""
    before, after = record.read(before_status), record.read(step.status)
    say = ResourceLog(namespace, name, lambda: step.status)
    for event in step.events:
        level = logging.WARNING if event.warning else logging.INFO
        say.log(level, "%s: %s", event.reason, event.message, extra={"reason": event.reason})
    if after.phase is not before.phase or not before_status:
        ready = after.condition("Ready") or {}
        level = logging.WARNING if after.phase is record.Phase.ROLLING_BACK else logging.INFO
        reason = str(ready.get("reason") or "")
        was = before.phase if before_status else "new"
        say.log(level, "%s -> %s (%s: %s)", was, after.phase, reason, ready.get("message"), extra={"reason": reason})
    stalled = _stalled(after)
    if stalled is not None and stalled != _stalled(before):
        say.warning("stalled (%s): %s", *stalled, extra={"reason": stalled[0]})


def _stalled(rec: record.Record) -> tuple[str, str] | None:
    """The Stalled condition's reason and message while it is True."""
    stalled = rec.condition("Stalled")
    if stalled is None or stalled.get("status") != "True":
        return None
    return str(stalled.get("reason") or ""), str(stalled.get("message") or "")
