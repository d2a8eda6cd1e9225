"""``parse_spec``: the gate every spec passes before the operator acts on it.

It re-checks everything the CRD schema and its CEL rules check (the operator must
not trust that the schema was installed, or installed at this version) and adds
what no rule can see: matchLabels keys (a map's keys have no length bound, so a
rule reading them would break the CEL cost budget), targets that are duplicates
only once their selectors are normalised, and whether a dockerconfigjson
constant is JSON. It reports the first problem as ``InvalidSpec`` with a field
path, in a fixed order.

Secrets stay out of every message: no message quotes a generate entry's ``value``.
Messages quote only names, keys, kinds, types and field names, clipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypedDict

from secretrotation.core.names import MAX_BASE_NAME_LENGTH, parse_revision
from secretrotation.core.spec.fields import DurationRule, Fields, check_length, quote
from secretrotation.core.spec.selectors import targets_of
from secretrotation.core.spec.types import (
    _DOCKER_CONFIG_KEY,
    _REQUIRED_KEYS,
    DEFAULT_LENGTH,
    DEFAULT_RETAIN,
    MAX_CONSTANT_LENGTH,
    MAX_GENERATE_RULES,
    MAX_KEY_LENGTH,
    MAX_LENGTH,
    MAX_NAME_LENGTH,
    MAX_RETAIN,
    MIN_LENGTH,
    REFUSED_SECRET_TYPES,
    SECRET_KEY_PATTERN,
    VERSION_SUFFIX_PATTERN,
    Alphabet,
    GenerateRule,
    InvalidSpec,
    RotationSpec,
    SecretType,
    ServiceAccountSpec,
    VerifySpec,
    format_duration,
)


def parse_spec(spec: Mapping[str, Any]) -> RotationSpec:
    """Validate and default a SecretRotation ``spec`` (as the API returns it).

    Raises InvalidSpec for the first problem, in this order: unknown fields;
    secretName vs serviceAccount; the Secret or ServiceAccount fields; targets;
    rotateEvery; verify; retain; paused.
    """
    return parse_at(spec, "spec")


_SPEC_FIELDS = frozenset(
    {"secretName", "type", "generate", "from", "serviceAccount", "targets", "rotateEvery", "verify", "retain", "paused"}
)


_ROTATE_EVERY = DurationRule("rotateEvery", None, "1m", "8760h")
_VERIFY_TIMEOUT = DurationRule("timeout", "10m", "10s", "24h")
_VERIFY_STABLE_FOR = DurationRule("stableFor", "30s", "0s", "1h")
_VERIFY_NOT_READY_AFTER = DurationRule("notReadyAfter", None, "10s", "24h")


def parse_at(spec: Mapping[str, Any], path: str) -> RotationSpec:
    root = Fields.of(spec, path, _SPEC_FIELDS)
    if root.has("secretName") == root.has("serviceAccount"):
        raise InvalidSpec(path, "set exactly one of secretName (rotate a Secret) or serviceAccount")
    credential = _service_account_mode(root) if root.has("serviceAccount") else _secret_mode(root)
    return RotationSpec(
        **credential,
        targets=targets_of(root),
        rotate_every=root.duration(_ROTATE_EVERY),
        verify=_verify(root.child("verify", {"timeout", "stableFor", "notReadyAfter"})),
        retain=root.integer("retain", DEFAULT_RETAIN, 0, MAX_RETAIN),
        paused=root.boolean("paused", False),
    )


class _Credential(TypedDict):
    """The fields of RotationSpec that say what is rotated."""

    secret_name: str | None
    secret_type: SecretType
    generate: tuple[GenerateRule, ...]
    from_secret: str | None
    service_account: ServiceAccountSpec | None


def _secret_mode(root: Fields) -> _Credential:
    secret_name = _base_name(root, "secretName")
    secret_type = _secret_type(root)
    if root.has("generate") == root.has("from"):
        raise InvalidSpec(root.path, "with secretName, set exactly one of generate or from")
    return _Credential(
        secret_name=secret_name,
        secret_type=secret_type,
        generate=_generate_rules(root, secret_type),
        from_secret=_from_secret(root, secret_name) if root.has("from") else None,
        service_account=None,
    )


def _service_account_mode(root: Fields) -> _Credential:
    for key in ("generate", "from", "type"):
        if root.has(key):
            raise InvalidSpec(root.at(key), "is not allowed with serviceAccount")
    account = root.child("serviceAccount", {"name", "tokenSecret"})
    return _Credential(
        secret_name=None,
        secret_type=SecretType.OPAQUE,
        generate=(),
        from_secret=None,
        service_account=ServiceAccountSpec(
            name=_base_name(account, "name"),
            token_secret=account.boolean("tokenSecret", False),
        ),
    )


def _base_name(fields: Fields, key: str) -> str:
    """The name versions are derived from; one that looks like a version itself is refused."""
    name = fields.name(key, MAX_BASE_NAME_LENGTH)
    if re.search(VERSION_SUFFIX_PATTERN, name):
        raise InvalidSpec(
            fields.at(key),
            f"{quote(name)} ends in -v<digits>, the form of a version's name: it would pass for another "
            "rotation's version",
        )
    return name


def _secret_type(root: Fields) -> SecretType:
    value = root.get("type")
    if isinstance(value, str) and value in REFUSED_SECRET_TYPES:
        raise InvalidSpec(
            root.at("type"),
            f"type {value} is refused: Kubernetes mints credentials into Secrets of that type",
        )
    return root.choice("type", SecretType, SecretType.OPAQUE)


def _generate_rules(root: Fields, secret_type: SecretType) -> tuple[GenerateRule, ...]:
    entries = root.items("generate", MAX_GENERATE_RULES)
    if entries is None:
        return ()
    rules: list[GenerateRule] = []
    for index, raw in enumerate(entries):
        entry = Fields.of(raw, f"{root.at('generate')}[{index}]", {"key", "length", "alphabet", "value"})
        key = _secret_key(entry)
        if any(rule.key == key for rule in rules):
            raise InvalidSpec(entry.at("key"), f"duplicate key {quote(key)}")
        rules.append(_generate_rule(entry, key))
    _check_required_keys(root, secret_type, rules)
    return tuple(rules)


def _secret_key(entry: Fields) -> str:
    key = entry.string("key", required=True)
    assert key is not None
    check_length(key, MAX_KEY_LENGTH, entry.at("key"))
    if not re.fullmatch(SECRET_KEY_PATTERN, key):
        raise InvalidSpec(
            entry.at("key"),
            f"{quote(key)} is not a valid data key: use letters, digits, '-', '_' and '.', "
            "and do not start with '..' or be '.'",
        )
    return key


def _generate_rule(entry: Fields, key: str) -> GenerateRule:
    if not entry.has("value"):
        return GenerateRule(
            key=key,
            length=entry.integer("length", DEFAULT_LENGTH, MIN_LENGTH, MAX_LENGTH),
            alphabet=entry.choice("alphabet", Alphabet, Alphabet.ALPHANUMERIC),
        )
    if entry.has("length") or entry.has("alphabet"):
        raise InvalidSpec(entry.path, "set either value (a constant) or length/alphabet (random), not both")
    value = entry.string("value")
    assert value is not None
    if len(value) > MAX_CONSTANT_LENGTH:
        raise InvalidSpec(entry.at("value"), f"must be at most {MAX_CONSTANT_LENGTH} characters")
    return GenerateRule(key=key, value=value)


def _check_required_keys(root: Fields, secret_type: SecretType, rules: list[GenerateRule]) -> None:
    """Refuse, now, a version the API server would refuse at staging time."""
    keys = {rule.key for rule in rules}
    for alternatives in _REQUIRED_KEYS.get(secret_type, ()):
        if keys.isdisjoint(alternatives):
            wanted = " or ".join(repr(key) for key in alternatives)
            raise InvalidSpec(root.at("generate"), f"type {secret_type} needs a generate entry for {wanted}")
    if secret_type is SecretType.DOCKER_CONFIG_JSON:
        index = next(i for i, rule in enumerate(rules) if rule.key == _DOCKER_CONFIG_KEY)
        path = f"{root.at('generate')}[{index}]"
        value = rules[index].value
        if value is None:
            raise InvalidSpec(path, f"{_DOCKER_CONFIG_KEY} must be a constant value: random text is not JSON")
        if not _is_json_object(value):
            # Never quote the value or the decoder's message: this is a credential.
            raise InvalidSpec(f"{path}.value", f"must be a JSON object for type {secret_type}")


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _from_secret(root: Fields, secret_name: str) -> str:
    source = root.child("from", {"secretName"})
    name = source.name("secretName", MAX_NAME_LENGTH)
    if name == secret_name or parse_revision(secret_name, name) is not None:
        raise InvalidSpec(
            source.at("secretName"),
            f"{quote(name)} belongs to this rotation; copy from a Secret outside it",
        )
    return name


def _verify(verify: Fields) -> VerifySpec:
    timeout = verify.duration(_VERIFY_TIMEOUT)
    stable_for = verify.duration(_VERIFY_STABLE_FOR)
    assert timeout is not None and stable_for is not None, "both have defaults"
    if stable_for >= timeout:
        raise InvalidSpec(
            verify.at("stableFor"),
            f"must be shorter than timeout ({format_duration(timeout)}), or verification can never succeed",
        )
    not_ready_after = verify.duration(_VERIFY_NOT_READY_AFTER)
    if not_ready_after is not None and not_ready_after >= timeout:
        raise InvalidSpec(
            verify.at("notReadyAfter"),
            f"must be shorter than timeout ({format_duration(timeout)}): the timeout would fail the rotation first",
        )
    return VerifySpec(timeout=timeout, stable_for=stable_for, not_ready_after=not_ready_after)
