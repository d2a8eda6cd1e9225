"""The SecretRotation spec as typed, frozen values, and the parser that builds them.

``parse_spec`` is the gate every spec passes before the operator acts on it. It
re-checks everything the CRD schema checks (the operator must not trust that the
schema was installed, or installed at this version) and adds the rules a
portable schema cannot express: duplicates, cross-field rules, duration ranges,
label selector semantics and the keys a Secret type requires. It reports the
first problem as ``InvalidSpec`` with a field path, in a fixed order.

Secrets stay out of every message: a generate entry's ``value`` may be a
credential, so no message quotes it and ``GenerateRule`` leaves it out of its
repr. Messages quote only names, keys, kinds, types and field names, clipped.

Pure: no Kubernetes client, no kopf.
"""

from __future__ import annotations

import enum
import json
import re
import secrets
import string
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypedDict, TypeVar

from secretrotation.core.names import MAX_BASE_NAME_LENGTH, parse_revision

# Patterns shared with crds/secretrotation.yaml (a unit test keeps them equal).
# Python's fullmatch and Go's anchored search agree on them.
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A Secret data key: [-._a-zA-Z0-9]+, but never ".", ".." or "..<anything>"
# (Kubernetes' IsConfigMapKey), written without lookahead for Go's regexp.
SECRET_KEY_PATTERN = r"^\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$"
DURATION_PATTERN = r"^([0-9]+(s|m|h))+$"
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

MAX_NAME_LENGTH = 253
MAX_KEY_LENGTH = 253
MAX_LABEL_NAME_LENGTH = 63
MAX_CONSTANT_LENGTH = 4096
MAX_DURATION_TEXT_LENGTH = 32
MAX_GENERATE_RULES = 64
MAX_TARGETS = 64
MAX_MATCH_LABELS = 32
MAX_MATCH_EXPRESSIONS = 16
MAX_SELECTOR_VALUES = 64
DEFAULT_LENGTH = 32
MIN_LENGTH = 8
MAX_LENGTH = 1024
DEFAULT_RETAIN = 1
MAX_RETAIN = 10


class InvalidSpec(ValueError):
    """A spec the operator refuses, with the path of the offending field.

    ``str()`` is ``"<field>: <problem>"``, e.g.
    ``spec.generate[1].key: duplicate key 'password'``.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Alphabet(enum.StrEnum):
    """The characters a random value is drawn from."""

    ALPHANUMERIC = "alphanumeric"
    HEX = "hex"
    BASE64URL = "base64url"
    ASCII = "ascii"


ALPHABET_CHARACTERS: Mapping[Alphabet, str] = {
    Alphabet.ALPHANUMERIC: string.ascii_letters + string.digits,
    Alphabet.HEX: "0123456789abcdef",
    Alphabet.BASE64URL: string.ascii_letters + string.digits + "-_",
    Alphabet.ASCII: "".join(chr(code) for code in range(0x21, 0x7F)),  # printable, no space
}


class WorkloadKind(enum.StrEnum):
    """The workload kinds a rotation can switch to a new version."""

    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"
    DAEMONSET = "DaemonSet"


class SecretType(enum.StrEnum):
    """The Secret types a rotation may create.

    Never ``kubernetes.io/service-account-token`` or
    ``bootstrap.kubernetes.io/token``: Kubernetes mints credentials into
    Secrets of those types, so creating one on a user's behalf hands out access.
    """

    OPAQUE = "Opaque"
    BASIC_AUTH = "kubernetes.io/basic-auth"
    SSH_AUTH = "kubernetes.io/ssh-auth"
    TLS = "kubernetes.io/tls"
    DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"


REFUSED_SECRET_TYPES = frozenset({"kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token"})

# The data keys the API server requires per type: each inner tuple needs at
# least one of its keys (k8s.io/kubernetes pkg/apis/core/validation ValidateSecret).
_REQUIRED_KEYS: Mapping[SecretType, tuple[tuple[str, ...], ...]] = {
    SecretType.BASIC_AUTH: (("username", "password"),),
    SecretType.SSH_AUTH: (("ssh-privatekey",),),
    SecretType.TLS: (("tls.crt",), ("tls.key",)),
    SecretType.DOCKER_CONFIG_JSON: ((".dockerconfigjson",),),
}
_DOCKER_CONFIG_KEY = ".dockerconfigjson"

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

_Choice = TypeVar("_Choice", bound=enum.StrEnum)


@dataclass(frozen=True, repr=False)
class GenerateRule:
    """How one data key of every new version is filled.

    ``value`` set: that constant, and ``length``/``alphabet`` are unused.
    Otherwise ``length`` characters (not bytes) drawn from ``alphabet``.
    The repr never shows ``value``: a constant can be a credential.
    """

    key: str
    length: int = DEFAULT_LENGTH
    alphabet: Alphabet = Alphabet.ALPHANUMERIC
    value: str | None = None

    def __repr__(self) -> str:
        if self.value is not None:
            return f"GenerateRule(key={self.key!r}, value=<redacted>)"
        return f"GenerateRule(key={self.key!r}, length={self.length}, alphabet={self.alphabet.value!r})"


@dataclass(frozen=True)
class TargetSelector:
    """Workloads of one kind, by name or by label selector (exactly one is set).

    ``selector`` is a ``metav1.LabelSelector`` in API form, normalised: only
    non-empty ``matchLabels`` / ``matchExpressions``, and ``values`` only for
    ``In`` / ``NotIn``.
    """

    kind: WorkloadKind
    name: str | None = None
    selector: Mapping[str, Any] | None = None

    def matches(self, kind: str, name: str, labels: Mapping[str, str]) -> bool:
        """Whether the workload ``kind``/``name`` carrying ``labels`` is a target."""
        if kind != self.kind:
            return False
        if self.name is not None:
            return name == self.name
        return self.selector is not None and selector_matches(self.selector, labels)


@dataclass(frozen=True)
class VerifySpec:
    """How long a switched workload has to prove itself healthy."""

    timeout: timedelta
    stable_for: timedelta


@dataclass(frozen=True)
class ServiceAccountSpec:
    name: str
    token_secret: bool = False


DEFAULT_VERIFY = VerifySpec(timeout=timedelta(minutes=10), stable_for=timedelta(seconds=30))


@dataclass(frozen=True)
class RotationSpec:
    """A parsed, defaulted and validated SecretRotation spec.

    Secret mode: ``secret_name`` and exactly one of ``generate`` (non-empty) or
    ``from_secret``. ServiceAccount mode: ``service_account``; ``secret_type``
    is then ``Opaque`` and unused. ``targets`` None means auto-discovery.
    """

    secret_name: str | None
    secret_type: SecretType
    generate: tuple[GenerateRule, ...]
    from_secret: str | None
    service_account: ServiceAccountSpec | None
    targets: tuple[TargetSelector, ...] | None
    rotate_every: timedelta | None
    verify: VerifySpec = DEFAULT_VERIFY
    retain: int = DEFAULT_RETAIN
    paused: bool = False

    @property
    def base_name(self) -> str:
        """The name versions are derived from: the Secret or the ServiceAccount."""
        if self.service_account is not None:
            return self.service_account.name
        assert self.secret_name is not None, "a RotationSpec names a Secret or a ServiceAccount"
        return self.secret_name

    @property
    def credential_kind(self) -> Literal["Secret", "ServiceAccount"]:
        return "Secret" if self.service_account is None else "ServiceAccount"


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """``metav1.LabelSelector`` semantics: every matchLabels pair and every expression holds.

    As in Kubernetes, ``NotIn`` holds for an absent label, and an empty
    selector matches everything (``parse_spec`` refuses empty selectors).
    """
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", ()):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", ())
        present = key in labels
        holds = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not holds:
            return False
    return True


def parse_duration(text: str, field: str) -> timedelta:
    """Parse ``<number><unit>`` groups (units s, m, h), e.g. ``90s``, ``1h30m``, ``0s``.

    Whole seconds only, like the CRD pattern. Raises InvalidSpec naming ``field``.
    """
    if len(text) > MAX_DURATION_TEXT_LENGTH or not re.fullmatch(DURATION_PATTERN, text):
        raise InvalidSpec(field, "must be a duration such as 90s, 10m or 1h30m (units s, m, h)")
    unit_seconds = {"s": 1, "m": 60, "h": 3600}
    seconds = sum(int(number) * unit_seconds[unit] for number, unit in re.findall(r"([0-9]+)([smh])", text))
    if seconds > _MAX_TIMEDELTA_SECONDS:
        raise InvalidSpec(field, "is too long")
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """Whole seconds as ``parse_duration`` reads them back: ``600s``."""
    return f"{int(duration.total_seconds())}s"


def generate_value(rule: GenerateRule) -> str:
    """The rule's constant, or ``rule.length`` characters from its alphabet, drawn with ``secrets``."""
    if rule.value is not None:
        return rule.value
    characters = ALPHABET_CHARACTERS[rule.alphabet]
    return "".join(secrets.choice(characters) for _ in range(rule.length))


def parse_spec(spec: Mapping[str, Any]) -> RotationSpec:
    """Validate and default a SecretRotation ``spec`` (as the API returns it).

    Raises InvalidSpec for the first problem, in this order: unknown fields;
    secretName vs serviceAccount; the Secret or ServiceAccount fields; targets;
    rotateEvery; verify; retain; paused.
    """
    return _parse_spec(spec, "spec")


# --- Snapshots -------------------------------------------------------------
#
# When a rotation starts, the operator records the spec it started with in
# status, so a restart, or a spec edit mid-flight, cannot change the rules of a
# rotation already under way. Constants are not recorded: status is copied
# freely (kstatus and Argo CD health, dashboards, our own logs and events), and
# a copy there would outlive the user removing the constant from the spec. A
# constant entry becomes ``{"key": k, "constant": true}`` and
# ``spec_from_snapshot`` takes the value from the current spec: an edited
# constant is read at its new value (staging has usually written the version
# already), and a key that is no longer a constant is an InvalidSpec. Recording
# a hash instead was rejected: an unkeyed hash of a short constant can be
# brute-forced by anyone who reads status.
#
# The snapshot is the spec in CRD form with every default written out and
# durations in seconds, and it is read back through the same parser, so a
# snapshot edited by hand is checked as carefully as a spec.

SNAPSHOT_PATH = "status.rotation.spec"
_CONSTANT_MARKER = "constant"


def spec_to_snapshot(spec: RotationSpec) -> dict[str, Any]:
    """A JSON-able record of ``spec`` for status: camelCase, defaults explicit, no constant values."""
    snapshot: dict[str, Any] = {}
    if spec.service_account is None:
        snapshot["secretName"] = spec.secret_name
        snapshot["type"] = str(spec.secret_type)
        if spec.from_secret is not None:
            snapshot["from"] = {"secretName": spec.from_secret}
        else:
            snapshot["generate"] = [_rule_snapshot(rule) for rule in spec.generate]
    else:
        snapshot["serviceAccount"] = {
            "name": spec.service_account.name,
            "tokenSecret": spec.service_account.token_secret,
        }
    if spec.targets is not None:
        snapshot["targets"] = [_target_snapshot(target) for target in spec.targets]
    if spec.rotate_every is not None:
        snapshot["rotateEvery"] = format_duration(spec.rotate_every)
    snapshot["verify"] = {
        "timeout": format_duration(spec.verify.timeout),
        "stableFor": format_duration(spec.verify.stable_for),
    }
    snapshot["retain"] = spec.retain
    snapshot["paused"] = spec.paused
    return snapshot


def spec_from_snapshot(snapshot: Mapping[str, Any], current: RotationSpec) -> RotationSpec:
    """The spec a rotation started with, from its snapshot; constants come from ``current``.

    ``spec_from_snapshot(spec_to_snapshot(s), s) == s``. Raises InvalidSpec
    (paths under ``status.rotation.spec``) for a malformed snapshot, a snapshot
    holding a constant value, or a constant whose key is no longer a constant
    in ``current``.
    """
    if not isinstance(snapshot, Mapping):
        raise InvalidSpec(SNAPSHOT_PATH, "must be an object")
    restored = dict(snapshot)
    entries = snapshot.get("generate")
    if isinstance(entries, list):
        constants = {rule.key: rule.value for rule in current.generate if rule.value is not None}
        restored["generate"] = [
            _restore_constant(entry, f"{SNAPSHOT_PATH}.generate[{index}]", constants)
            for index, entry in enumerate(entries)
        ]
    return _parse_spec(restored, SNAPSHOT_PATH)


def _rule_snapshot(rule: GenerateRule) -> dict[str, Any]:
    if rule.value is not None:
        return {"key": rule.key, _CONSTANT_MARKER: True}
    return {"key": rule.key, "length": rule.length, "alphabet": str(rule.alphabet)}


def _target_snapshot(target: TargetSelector) -> dict[str, Any]:
    if target.name is not None:
        return {"kind": str(target.kind), "name": target.name}
    assert target.selector is not None, "a target has a name or a selector"
    return {"kind": str(target.kind), "selector": _copy_selector(target.selector)}


def _restore_constant(entry: Any, path: str, constants: Mapping[str, str | None]) -> Any:
    if not isinstance(entry, Mapping):
        return entry  # the parser reports it
    if "value" in entry:
        raise InvalidSpec(f"{path}.value", "a snapshot never records constant values")
    if _CONSTANT_MARKER not in entry:
        return entry
    key = entry.get("key")
    if entry[_CONSTANT_MARKER] is not True or set(entry) != {"key", _CONSTANT_MARKER}:
        raise InvalidSpec(path, "a constant entry must be exactly {key, constant: true}")
    if not isinstance(key, str) or key not in constants:
        raise InvalidSpec(
            f"{path}.key",
            f"constant {_quote(key)} is no longer a constant in spec.generate; status does not record its value",
        )
    return {"key": key, "value": constants[key]}


# --- The parser ------------------------------------------------------------

_MAX_TIMEDELTA_SECONDS = int(timedelta.max.total_seconds())
_SPEC_FIELDS = frozenset(
    {"secretName", "type", "generate", "from", "serviceAccount", "targets", "rotateEvery", "verify", "retain", "paused"}
)


@dataclass(frozen=True)
class _DurationRule:
    """A duration field, its default and inclusive bounds, written as users write them."""

    key: str
    default: str | None
    minimum: str
    maximum: str


_ROTATE_EVERY = _DurationRule("rotateEvery", None, "1m", "8760h")
_VERIFY_TIMEOUT = _DurationRule("timeout", "10m", "10s", "24h")
_VERIFY_STABLE_FOR = _DurationRule("stableFor", "30s", "0s", "1h")


@dataclass(frozen=True)
class _Object:
    """A JSON object at ``path`` whose fields are read one at a time, each checked."""

    data: Mapping[str, Any]
    path: str

    @classmethod
    def of(cls, value: Any, path: str, known: Collection[str]) -> _Object:
        if not isinstance(value, Mapping):
            raise InvalidSpec(path, "must be an object")
        for key in value:
            if key not in known:
                raise InvalidSpec(path, _unknown_field_problem(key))
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
        _check_length(value, max_length, self.at(key))
        if not re.fullmatch(DNS1123_SUBDOMAIN_PATTERN, value):
            raise InvalidSpec(
                self.at(key),
                f"{_quote(value)} is not a valid name: use lowercase letters, digits, '-' and '.', "
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

    def choice(self, key: str, choices: type[_Choice], default: _Choice | None = None) -> _Choice:
        value = self.data.get(key)
        if value is None:
            if default is None:
                raise InvalidSpec(self.at(key), "is required")
            return default
        allowed = [member.value for member in choices]
        if value not in allowed:
            raise InvalidSpec(self.at(key), f"must be one of {', '.join(allowed)}")
        return choices(value)

    def duration(self, rule: _DurationRule) -> timedelta | None:
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

    def child(self, key: str, known: Collection[str]) -> _Object:
        """The object at ``key``; an absent one reads as empty, so its fields take their defaults."""
        value = self.data.get(key)
        return _Object.of({} if value is None else value, self.at(key), known)


def _parse_spec(spec: Mapping[str, Any], path: str) -> RotationSpec:
    root = _Object.of(spec, path, _SPEC_FIELDS)
    if root.has("secretName") == root.has("serviceAccount"):
        raise InvalidSpec(path, "set exactly one of secretName (rotate a Secret) or serviceAccount")
    credential = _service_account_mode(root) if root.has("serviceAccount") else _secret_mode(root)
    return RotationSpec(
        **credential,
        targets=_targets(root),
        rotate_every=root.duration(_ROTATE_EVERY),
        verify=_verify(root.child("verify", {"timeout", "stableFor"})),
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


def _secret_mode(root: _Object) -> _Credential:
    secret_name = root.name("secretName", MAX_BASE_NAME_LENGTH)
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


def _service_account_mode(root: _Object) -> _Credential:
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
            name=account.name("name", MAX_BASE_NAME_LENGTH),
            token_secret=account.boolean("tokenSecret", False),
        ),
    )


def _secret_type(root: _Object) -> SecretType:
    value = root.get("type")
    if isinstance(value, str) and value in REFUSED_SECRET_TYPES:
        raise InvalidSpec(
            root.at("type"),
            f"type {value} is refused: Kubernetes mints credentials into Secrets of that type",
        )
    return root.choice("type", SecretType, SecretType.OPAQUE)


def _generate_rules(root: _Object, secret_type: SecretType) -> tuple[GenerateRule, ...]:
    entries = root.items("generate", MAX_GENERATE_RULES)
    if entries is None:
        return ()
    rules: list[GenerateRule] = []
    for index, raw in enumerate(entries):
        entry = _Object.of(raw, f"{root.at('generate')}[{index}]", {"key", "length", "alphabet", "value"})
        key = _secret_key(entry)
        if any(rule.key == key for rule in rules):
            raise InvalidSpec(entry.at("key"), f"duplicate key {_quote(key)}")
        rules.append(_generate_rule(entry, key))
    _check_required_keys(root, secret_type, rules)
    return tuple(rules)


def _secret_key(entry: _Object) -> str:
    key = entry.string("key", required=True)
    assert key is not None
    _check_length(key, MAX_KEY_LENGTH, entry.at("key"))
    if not re.fullmatch(SECRET_KEY_PATTERN, key):
        raise InvalidSpec(
            entry.at("key"),
            f"{_quote(key)} is not a valid data key: use letters, digits, '-', '_' and '.', "
            "and do not start with '..' or be '.'",
        )
    return key


def _generate_rule(entry: _Object, key: str) -> GenerateRule:
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


def _check_required_keys(root: _Object, secret_type: SecretType, rules: list[GenerateRule]) -> None:
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


def _from_secret(root: _Object, secret_name: str) -> str:
    source = root.child("from", {"secretName"})
    name = source.name("secretName", MAX_NAME_LENGTH)
    if name == secret_name or parse_revision(secret_name, name) is not None:
        raise InvalidSpec(
            source.at("secretName"),
            f"{_quote(name)} belongs to this rotation; copy from a Secret outside it",
        )
    return name


def _targets(root: _Object) -> tuple[TargetSelector, ...] | None:
    entries = root.items(
        "targets", MAX_TARGETS, if_empty="must not be empty; omit targets to discover workloads automatically"
    )
    if entries is None:
        return None
    targets: list[TargetSelector] = []
    for index, raw in enumerate(entries):
        entry = _Object.of(raw, f"{root.at('targets')}[{index}]", {"kind", "name", "selector"})
        target = _target(entry)
        if target in targets:
            what = target.name if target.name is not None else "with the same selector"
            raise InvalidSpec(entry.path, f"duplicate target {target.kind} {what}")
        targets.append(target)
    return tuple(targets)


def _target(entry: _Object) -> TargetSelector:
    kind = entry.choice("kind", WorkloadKind)
    if entry.has("name") == entry.has("selector"):
        raise InvalidSpec(entry.path, "set exactly one of name or selector")
    if entry.has("name"):
        return TargetSelector(kind=kind, name=entry.name("name", MAX_NAME_LENGTH))
    return TargetSelector(
        kind=kind, selector=_label_selector(entry.child("selector", {"matchLabels", "matchExpressions"}))
    )


def _label_selector(selector: _Object) -> dict[str, Any]:
    normalised: dict[str, Any] = {}
    match_labels = _match_labels(selector)
    if match_labels:
        normalised["matchLabels"] = match_labels
    # Empty matchLabels / matchExpressions read as absent, as in Kubernetes; only the whole selector must say something.
    expressions = selector.items("matchExpressions", MAX_MATCH_EXPRESSIONS, if_empty=None)
    if expressions:
        normalised["matchExpressions"] = [
            _match_expression(
                _Object.of(raw, f"{selector.at('matchExpressions')}[{index}]", {"key", "operator", "values"})
            )
            for index, raw in enumerate(expressions)
        ]
    if not normalised:
        raise InvalidSpec(selector.path, "selector must not be empty; name the workloads or use labels")
    return normalised


def _match_labels(selector: _Object) -> dict[str, str]:
    path = selector.at("matchLabels")
    labels = selector.get("matchLabels")
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidSpec(path, "must be an object")
    if len(labels) > MAX_MATCH_LABELS:
        raise InvalidSpec(path, f"must have at most {MAX_MATCH_LABELS} labels")
    for key, value in labels.items():
        _check_label_key(key, path)
        if not isinstance(value, str):
            raise InvalidSpec(path, f"the value of {_quote(key)} must be a string")
        _check_label_value(value, f"the value of {_quote(key)}", path)
    return dict(labels)


def _match_expression(expression: _Object) -> dict[str, Any]:
    key = expression.string("key", required=True)
    assert key is not None
    _check_label_key(key, expression.at("key"))
    operator = expression.get("operator")
    if operator is None:
        raise InvalidSpec(expression.at("operator"), "is required")
    if operator not in SELECTOR_OPERATORS:
        raise InvalidSpec(expression.at("operator"), f"must be one of {', '.join(SELECTOR_OPERATORS)}")
    values = list(_selector_values(expression))
    if operator in ("In", "NotIn"):
        if not values:
            raise InvalidSpec(expression.at("values"), f"must not be empty for operator {operator}")
        return {"key": key, "operator": operator, "values": values}
    if values:
        raise InvalidSpec(expression.at("values"), f"must be empty for operator {operator}")
    return {"key": key, "operator": operator}


def _selector_values(expression: _Object) -> Iterator[str]:
    path = expression.at("values")
    values = expression.get("values")
    if values is None:
        return
    if not isinstance(values, list):
        raise InvalidSpec(path, "must be a list")
    if len(values) > MAX_SELECTOR_VALUES:
        raise InvalidSpec(path, f"must have at most {MAX_SELECTOR_VALUES} items")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidSpec(f"{path}[{index}]", "must be a string")
        _check_label_value(value, "the value", f"{path}[{index}]")
        yield value


def _check_label_key(key: Any, path: str) -> None:
    if not isinstance(key, str):
        raise InvalidSpec(path, "label keys must be strings")
    prefix, _, name = key.rpartition("/")
    if len(prefix) > MAX_NAME_LENGTH or len(name) > MAX_LABEL_NAME_LENGTH or not re.fullmatch(LABEL_KEY_PATTERN, key):
        raise InvalidSpec(
            path,
            f"{_quote(key)} is not a valid label key: an optional DNS prefix and '/', then at most 63 "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )


def _check_label_value(value: str, what: str, path: str) -> None:
    if len(value) > MAX_LABEL_NAME_LENGTH or not re.fullmatch(LABEL_VALUE_PATTERN, value):
        raise InvalidSpec(
            path,
            f"{what} is not a valid label value: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit",
        )


def _verify(verify: _Object) -> VerifySpec:
    timeout = verify.duration(_VERIFY_TIMEOUT)
    stable_for = verify.duration(_VERIFY_STABLE_FOR)
    assert timeout is not None and stable_for is not None, "both have defaults"
    if stable_for >= timeout:
        raise InvalidSpec(
            verify.at("stableFor"),
            f"must be shorter than timeout ({format_duration(timeout)}), or verification can never succeed",
        )
    return VerifySpec(timeout=timeout, stable_for=stable_for)


def _check_length(value: str, max_length: int, path: str) -> None:
    if len(value) > max_length:
        raise InvalidSpec(path, f"must be at most {max_length} characters")


def _unknown_field_problem(key: Any) -> str:
    if key == "namespace":
        return "unknown field 'namespace': a SecretRotation only acts in its own namespace"
    return f"unknown field {_quote(key)}"


def _quote(text: Any) -> str:
    """A name or key for a message, clipped so a pasted blob cannot flood status."""
    shown = str(text)
    return repr(shown if len(shown) <= 64 else shown[:61] + "...")


def _copy_selector(selector: Mapping[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = {}
    if "matchLabels" in selector:
        copied["matchLabels"] = dict(selector["matchLabels"])
    if "matchExpressions" in selector:
        copied["matchExpressions"] = [
            {name: list(part) if name == "values" else part for name, part in expression.items()}
            for expression in selector["matchExpressions"]
        ]
    return copied
