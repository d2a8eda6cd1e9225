"""How ``kubectl srot`` prints: tables and details for people, JSON and YAML for machines.

Everything printed is read from the typed record (``core/record.py``) or a ``Preview``:
names, reasons and times, never a value.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from secretrotation.core import record
from secretrotation.core.objects import timestamp
from secretrotation.core.preview import Preview

NONE = "<none>"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns as kubectl prints them: upper-case headers, left-aligned, three spaces apart."""
    cells = [list(headers), *([NONE if c is None or c == "" else str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def when(moment: datetime | None) -> str | None:
    return timestamp(moment) if moment is not None else None


def ago(moment: datetime | None, now: datetime) -> str:
    """``2m5s ago`` or ``in 3h``: a time relative to ``now``, as people read it."""
    if moment is None:
        return NONE
    seconds = int((moment - now).total_seconds())
    span = _span(abs(seconds))
    return f"in {span}" if seconds > 0 else f"{span} ago"


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return "".join(shown) or "0s"


def machine(value: Any, output: str) -> str:
    """``value`` (JSON-able, or dataclasses) as ``-o json`` or ``-o yaml`` prints it."""
    plain = _plain(value)
    if output == "json":
        return json.dumps(plain, indent=2)
    return yaml.safe_dump(plain, sort_keys=False).rstrip()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- status ------------------------------------------------------------------------------------


def _condition(rec: record.Record, kind: str) -> Mapping[str, Any]:
    return rec.condition(kind) or {}


def status_table(bodies: Sequence[Mapping[str, Any]], *, all_namespaces: bool) -> str:
    now = datetime.now(UTC)
    headers = ["NAME", "PHASE", "READY", "REASON", "REVISION", "CURRENT", "NEXT ROTATION"]
    rows = []
    for body in bodies:
        rec = record.read(body.get("status") or {})
        ready = _condition(rec, "Ready")
        row = [body["metadata"]["name"], rec.phase.value, ready.get("status"), ready.get("reason")]
        row += [rec.revision or None, rec.current, ago(rec.next_rotation_time, now)]
        rows.append([body["metadata"]["namespace"], *row] if all_namespaces else row)
    return table(["NAMESPACE", *headers] if all_namespaces else headers, rows)


def status_details(body: Mapping[str, Any]) -> str:
    """One SecretRotation, as ``kubectl describe`` would tell it."""
    meta, rec = body["metadata"], record.read(body.get("status") or {})
    spec = body.get("spec") or {}
    now = datetime.now(UTC)
    lines = [
        f"Name:            {meta['name']}",
        f"Namespace:       {meta['namespace']}",
        f"Phase:           {rec.phase.value}{'   (paused)' if spec.get('paused') else ''}",
        f"Revision:        {rec.revision or NONE}",
        f"Current version: {rec.current or NONE}",
    ]
    if rec.retained:
        lines.append(f"Retained:        {', '.join(rec.retained)}")
    lines.append("Conditions:")
    conditions = [[c.get("type"), c.get("status"), c.get("reason"), c.get("message")] for c in rec.conditions]
    lines.append(_indent(table(["TYPE", "STATUS", "REASON", "MESSAGE"], conditions)))
    if rec.rotation is not None:
        r = rec.rotation
        started = ago(r.started_at, now)
        lines.append(f"In flight:       revision {r.revision}, {r.version} ({r.trigger}, started {started})")
        if r.previous:
            lines.append(f"  replacing:     {r.previous}")
        if r.failure is not None:
            lines.append(f"  failed:        {r.failure.reason}: {r.failure.message}")
    if rec.targets:
        lines.append("Targets:")
        reports = [[t.kind, t.name, t.state, t.version, t.message] for t in rec.targets]
        lines.append(_indent(table(["KIND", "NAME", "STATE", "VERSION", "MESSAGE"], reports)))
    elif rec.rotation is not None and rec.rotation.targets:
        lines.append("Targets:")
        planned = [[t.kind, t.name, "Switched" if t.switched else "Pending"] for t in rec.rotation.targets]
        lines.append(_indent(table(["KIND", "NAME", "STATE"], planned)))
    if rec.pending_deletion:
        lines.append("Pending deletion:")
        blocked = [[b.name, b.reason, b.message] for b in rec.pending_deletion]
        lines.append(_indent(table(["NAME", "REASON", "MESSAGE (REFERRERS)"], blocked)))
    if rec.untracked:
        lines.append(f"Untracked consumers: {', '.join(f'{u.kind}/{u.name}' for u in rec.untracked)}")
    if rec.last_failure is not None:
        failure = rec.last_failure
        lines.append(f"Last failure:    {failure.reason}: {failure.message} ({ago(rec.last_failure_time, now)})")
        if rec.consecutive_failures:
            lines.append(f"  failures in a row: {rec.consecutive_failures}")
    lines.append(f"Last rotation:   {_at(rec.last_rotation_time, now)}")
    lines.append(f"Next rotation:   {_at(rec.next_rotation_time, now)}")
    if rec.last_handled_request:
        lines.append(f"Last request:    {rec.last_handled_request}")
    return "\n".join(lines)


def _at(moment: datetime | None, now: datetime) -> str:
    return f"{timestamp(moment)} ({ago(moment, now)})" if moment is not None else NONE


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


# -- history -----------------------------------------------------------------------------------


def history_table(body: Mapping[str, Any]) -> str:
    history = record.read(body.get("status") or {}).history
    if not history:
        return f"No rotation of {body['metadata']['name']} has ended yet."
    rows = []
    for entry in history:
        took = (
            _span(int((entry.finished_at - entry.started_at).total_seconds()))
            if entry.started_at and entry.finished_at
            else None
        )
        failure = f"{entry.failure.reason}: {entry.failure.message}" if entry.failure else None
        rows.append([entry.revision, entry.version, entry.trigger, when(entry.started_at), took, entry.result, failure])
    return table(["REVISION", "VERSION", "TRIGGER", "STARTED", "DURATION", "RESULT", "FAILURE"], rows)


# -- plan ----------------------------------------------------------------------------------------


def preview_text(preview: Preview) -> str:
    """The dry run, as a reviewer reads it: what would be staged, switched, refused, kept and deleted."""
    in_use = preview.previous or "nothing yet"
    lines = [
        f"Plan for SecretRotation {preview.namespace}/{preview.rotation} (a dry run: nothing was changed)",
        f"Would stage {preview.kind} {preview.version} (revision {preview.revision}) beside {in_use} (in use).",
    ]
    lines += [f"Note: {note}" for note in preview.notes]
    if preview.problem is not None:
        lines.append(f"Would stop before switching anything: {preview.problem.reason}: {preview.problem.message}")
    lines.append(f"Targets ({len(preview.targets)}):")
    for target in preview.targets:
        verdict = f"   REFUSED {target.refusal.reason}: {target.refusal.message}" if target.refusal else ""
        lines.append(f"  {target.kind} {target.name}{verdict}")
        lines += [f"    {c.path}: {c.old} -> {c.new}" for c in target.changes]
        lines += [f"    missing: {m}" for m in target.missing]
    if preview.untracked:
        lines.append(f"Untracked consumers ({len(preview.untracked)}, not switched; they keep {in_use} in use):")
        lines += [f"  {u.kind} {u.name}" for u in preview.untracked]
    lines.append("Collection after a success:")
    if not preview.disposals:
        lines.append("  nothing to collect")
    else:
        disposals = [[d.name, d.outcome, d.reason, d.message] for d in preview.disposals]
        lines.append(_indent(table(["VERSION", "OUTCOME", "REASON", "WHY"], disposals)))
    return "\n".join(lines)
