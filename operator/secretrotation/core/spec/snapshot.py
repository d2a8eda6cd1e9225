"""The spec a rotation started with, recorded in status without its constants."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secretrotation.core.spec.fields import copy_selector, quote
from secretrotation.core.spec.parsing import parse_at
from secretrotation.core.spec.types import GenerateRule, InvalidSpec, RotationSpec, TargetSelector, format_duration

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
    if spec.verify.not_ready_after is not None:
        snapshot["verify"]["notReadyAfter"] = format_duration(spec.verify.not_ready_after)
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
    return parse_at(restored, SNAPSHOT_PATH)


def _rule_snapshot(rule: GenerateRule) -> dict[str, Any]:
    if rule.value is not None:
        return {"key": rule.key, _CONSTANT_MARKER: True}
    return {"key": rule.key, "length": rule.length, "alphabet": str(rule.alphabet)}


def _target_snapshot(target: TargetSelector) -> dict[str, Any]:
    if target.name is not None:
        return {"kind": str(target.kind), "name": target.name}
    assert target.selector is not None, "a target has a name or a selector"
    return {"kind": str(target.kind), "selector": copy_selector(target.selector)}


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
            f"constant {quote(key)} is no longer a constant in spec.generate; status does not record its value",
        )
    return {"key": key, "value": constants[key]}
