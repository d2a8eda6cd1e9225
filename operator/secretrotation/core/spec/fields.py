"""Reading a JSON object field by field, each checked, with errors that name the field path."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from secretrotation.core.spec.types import (
    DNS1123_SUBDOMAIN_PATTERN,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    MAX_LABEL_NAME_LENGTH,
    MAX_NAME_LENGTH,
    Choice,
    InvalidSpec,
    parse_duration,
)


@dataclass(frozen=True)
class DurationRule:
    """A duration field, its default and inclusive bounds, written as users write them."""

    key: str
    default: str | None
    minimum: str
    maximum: str


@dataclass(frozen=True)
class Fields:
    """A JSON object at ``path`` whose fields are read one at a time, each checked."""

    data: Mapping[str, Any]
    path: str

    @classmethod
    def of(cls, value: Any, path: str, known: Collection[str]) -> Fields:
        if not isinstance(value, Mapping):
            raise InvalidSpec(path, "must be an object")
        for key in value:
            if key not in known:
                raise InvalidSpec(path, unknown_field_problem(key))
        return cls(value, path)

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        # The API server drops nulls for non-nullable fields; treat them as absent here too.
        return self.data.get(key) is not None

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise InvalidSpec(self.at(key), "is required")
            return None
        if not isinstance(value, str):
            raise InvalidSpec(self.at(key), "must be a string")
        return value

    def name(self, key: str, max_length: int) -> str:
        """A required DNS-1123 subdomain (the rule for Secret, ServiceAccount and workload names)."""
        value = self.string(key, required=True)
        assert value is not None
        check_length(value, max_length, self.at(key))
        if not re.fullmatch(DNS1123_SUBDOMAIN_PATTERN, value):
            raise InvalidSpec(
                self.at(key),
                f"{quote(value)} is not a valid name: use lowercase letters, digits, '-' and '.', "
                "starting and ending with a letter or digit",
            )
        return value

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        # bool is an int subclass in Python; JSON true is not a number.
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidSpec(self.at(key), "must be an integer")
        if not minimum <= value <= maximum:
            raise InvalidSpec(self.at(key), f"must be between {minimum} and {maximum}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidSpec(self.at(key), "must be true or false")
        return value

    def choice(self, key: str, choices: type[Choice], default: Choice | None = None) -> Choice:
        value = self.data.get(key)
        if value is None:
            if default is None:
                raise InvalidSpec(self.at(key), "is required")
            return default
        allowed = [member.value for member in choices]
        if value not in allowed:
            raise InvalidSpec(self.at(key), f"must be one of {', '.join(allowed)}")
        return choices(value)

    def duration(self, rule: DurationRule) -> timedelta | None:
        text = self.data.get(rule.key)
        if text is None:
            text = rule.default
        if text is None:
            return None
        if not isinstance(text, str):
            raise InvalidSpec(self.at(rule.key), "must be a duration string such as 10m")
        value = parse_duration(text, self.at(rule.key))
        if not parse_duration(rule.minimum, rule.key) <= value <= parse_duration(rule.maximum, rule.key):
            raise InvalidSpec(self.at(rule.key), f"must be between {rule.minimum} and {rule.maximum}")
        return value

    def items(self, key: str, max_items: int, *, if_empty: str | None = "must not be empty") -> list[Any] | None:
        """The list at ``key``, None if absent; an empty list is refused with ``if_empty`` unless that is None."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise InvalidSpec(self.at(key), "must be a list")
        if not value and if_empty is not None:
            raise InvalidSpec(self.at(key), if_empty)
        if len(value) > max_items:
            raise InvalidSpec(self.at(key), f"must have at most {max_items} items")
        return value

    def child(self, key: str, known: Collection[str]) -> Fields:
        """The object at ``key``; an absent one reads as empty, so its fields take their defaults."""
        value = self.data.get(key)
        return Fields.of({} if value is None else value, self.at(key), known)


def check_label_key(key: Any, path: str) -> None:
    if not isinstance(key, str):
        raise InvalidSpec(path, "label keys must be strings")
    prefix, _, name = key.rpartition("/")
    if len(prefix) > MAX_NAME_LENGTH or len(name) > MAX_LABEL_NAME_LENGTH or not re.fullmatch(LABEL_KEY_PATTERN, key):
        raise InvalidSpec(
            path,
            f"{quote(key)} is not a valid label key: an optional DNS prefix and '/', then at most 63 "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )


def check_label_value(value: str, what: str, path: str) -> None:
    if len(value) > MAX_LABEL_NAME_LENGTH or not re.fullmatch(LABEL_VALUE_PATTERN, value):
        raise InvalidSpec(
            path,
            f"{what} is not a valid label value: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit",
        )


def check_length(value: str, max_length: int, path: str) -> None:
    if len(value) > max_length:
        raise InvalidSpec(path, f"must be at most {max_length} characters")


def unknown_field_problem(key: Any) -> str:
    if key == "namespace":
        return "unknown field 'namespace': a SecretRotation only acts in its own namespace"
    return f"unknown field {quote(key)}"


def quote(text: Any) -> str:
    """A name or key for a message, clipped so a pasted blob cannot flood status."""
    shown = str(text)
    return repr(shown if len(shown) <= 64 else shown[:61] + "...")


def copy_selector(selector: Mapping[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = {}
    if "matchLabels" in selector:
        copied["matchLabels"] = dict(selector["matchLabels"])
    if "matchExpressions" in selector:
        copied["matchExpressions"] = [
            {name: list(part) if name == "values" else part for name, part in expression.items()}
            for expression in selector["matchExpressions"]
        ]
    return copied
