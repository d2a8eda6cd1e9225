"""The one place that names the API and the versioned objects a rotation stages.

A rotation of base name ``db`` stages versions ``db-v1``, ``db-v2``, ... Each
version carries two labels, the rotation's name and its revision, so the
operator can find its own objects and never mistake someone else's for one.
Pure: no Kubernetes client, no kopf.
"""

from __future__ import annotations

import re

GROUP = "rotation.sre.dev"
VERSION = "v1alpha1"
PLURAL = "secretrotations"
KIND = "SecretRotation"

# Object names are at most 253 characters; a base name leaves room for "-v"
# and a revision of up to 10 digits.
MAX_BASE_NAME_LENGTH = 241

ROTATION_LABEL = f"{GROUP}/rotation"
REVISION_LABEL = f"{GROUP}/revision"
REQUESTED_AT_ANNOTATION = f"{GROUP}/requested-at"
# On every object a rotation creates: the nonce its record held before the create. Labels can be
# copied by anyone who may create Secrets; an object made before the nonce existed cannot carry it.
NONCE_ANNOTATION = f"{GROUP}/nonce"
# On a RoleBinding: its editors consent to new versions of the accounts it names joining it.
EXTEND_BINDING_ANNOTATION = f"{GROUP}/extend-to-new-versions"

_VERSION_SEPARATOR = "-v"
# Label values: at most 63 characters, alphanumeric at both ends.
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_MAX_LABEL_VALUE_LENGTH = 63


def version_name(base: str, revision: int) -> str:
    """The name of version ``revision`` (1, 2, ...) of ``base``: ``<base>-v<revision>``.

    Raises ValueError for a revision below 1, which ``parse_revision`` would
    never give back.
    """
    if revision < 1:
        raise ValueError(f"revision must be at least 1, got {revision}")
    return f"{base}{_VERSION_SEPARATOR}{revision}"


def parse_revision(base: str, name: str) -> int | None:
    """The revision ``name`` is a version of ``base``, or None if it is not one.

    Only the exact form ``version_name`` produces counts: ``<base>-v`` and a
    positive decimal number without leading zeros, so ``db-v01``, ``db-v0``
    and ``db-v1x`` are not versions of ``db``.
    """
    prefix = base + _VERSION_SEPARATOR
    if not name.startswith(prefix):
        return None
    digits = name[len(prefix) :]
    # isascii: str.isdigit also accepts digits such as "²" that int() rejects.
    if not (digits.isascii() and digits.isdigit()) or digits.startswith("0"):
        return None
    return int(digits)


def version_labels(rotation_name: str, revision: int) -> dict[str, str]:
    """The labels that mark an object as version ``revision`` of a rotation.

    Raises ValueError if ``rotation_name`` cannot be a label value (longer than
    63 characters); the CRD caps SecretRotation names at 63 so that it cannot
    happen to a stored object.
    """
    if len(rotation_name) > _MAX_LABEL_VALUE_LENGTH or not _LABEL_VALUE.fullmatch(rotation_name):
        raise ValueError(f"{rotation_name!r} cannot be a label value (at most 63 characters)")
    if revision < 1:
        raise ValueError(f"revision must be at least 1, got {revision}")
    return {ROTATION_LABEL: rotation_name, REVISION_LABEL: str(revision)}
