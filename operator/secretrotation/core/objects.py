"""Safe readers for API objects as JSON, and timestamps as Kubernetes writes them.

Missing or ``null`` fields read as zero or empty, never as an exception: the
rules that use these judge objects written by many clients.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp such as ``2026-01-02T03:04:05Z`` into aware UTC.

    Raises ValueError for text that is not a timestamp.
    """
    parsed = datetime.fromisoformat(text.upper())
    if parsed.tzinfo is None:
        # RFC 3339 requires an offset; Kubernetes always writes one. Read a bare
        # one as UTC rather than guess the operator's local zone.
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def timestamp(moment: datetime) -> str:
    """``moment`` as Kubernetes writes times: RFC 3339 in UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """``parse_timestamp`` for an optional field: None when absent or empty."""
    return parse_timestamp(text) if text else None


def name_of(obj: Mapping[str, Any]) -> str:
    return str_at(mapping(obj.get("metadata")), "name")


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def mapping_or_none(value: Any) -> Mapping[str, Any] | None:
    # Go distinguishes a nil pointer from an empty struct; JSON null or a
    # missing field is the nil pointer, {} is the empty struct.
    return value if isinstance(value, Mapping) else None


def mappings(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (entry for entry in value if isinstance(entry, Mapping))


def optional_int(value: Any) -> int | None:
    # bool is an int subclass in Python; JSON true is not a count.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def int_at(mapping: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = optional_int(mapping.get(key))
    return default if value is None else value


def str_at(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    return value if isinstance(value, str) else ""


def value_at(obj: Any, pointer: str) -> Any:
    """The value at a JSON pointer, or None when the path does not exist."""
    for raw in pointer.lstrip("/").split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(obj, Mapping):
            obj = obj.get(key)
        elif isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            obj = obj[int(key)]
        else:
            return None
    return obj


def changed_strings(before: Any, after: Any, path: str) -> Iterator[tuple[str, str, str]]:
    """(JSON pointer, old, new) for every string that differs between two trees of the same shape."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in before:
            if key in after:
                yield from changed_strings(before[key], after[key], f"{path}/{pointer_token(key)}")
    elif isinstance(before, list) and isinstance(after, list):
        for index, (old, new) in enumerate(zip(before, after, strict=False)):
            yield from changed_strings(old, new, f"{path}/{index}")
    elif isinstance(before, str) and isinstance(after, str) and before != after:
        yield path, before, after


def pointer_token(key: str) -> str:
    """A key as one JSON pointer token (RFC 6901: ``~`` and ``/`` escaped)."""
    return key.replace("~", "~0").replace("/", "~1")
