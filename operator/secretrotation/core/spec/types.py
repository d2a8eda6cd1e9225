"""The SecretRotation spec as typed, frozen values: what a parsed spec is, and its limits.

Secrets stay out of every repr: a generate entry's ``value`` may be a credential.
Pure: no Kubernetes client, no kopf.
"""

from __future__ import annotations

import enum
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar

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
# The end of a version's name (<base>-v<N>): a base name ending so would pass for another rotation's version.
VERSION_SUFFIX_PATTERN = r"-v[0-9]+$"

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
MAX_TIMEDELTA_SECONDS = int(timedelta.max.total_seconds())


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
# The types a version may have, and so the only types a `from` Secret may be copied from.
COPYABLE_SECRET_TYPES = frozenset(t.value for t in SecretType)

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

Choice = TypeVar("Choice", bound=enum.StrEnum)


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
    # A new pod not Ready for this long fails verification before the timeout (None: not set, the default applies).
    not_ready_after: timedelta | None = None

    @property
    def not_ready_bound(self) -> timedelta:
        """How long a new pod may stay not Ready before verification fails (seconds, as a timedelta)."""
        return self.not_ready_after if self.not_ready_after is not None else DEFAULT_NOT_READY_AFTER


@dataclass(frozen=True)
class ServiceAccountSpec:
    name: str
    token_secret: bool = False


DEFAULT_NOT_READY_AFTER = timedelta(minutes=5)  # past the timeout, the timeout fails the rotation first
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
    if seconds > MAX_TIMEDELTA_SECONDS:
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
