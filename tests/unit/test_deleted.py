"""A SecretRotation deleted mid-rotation: its unverified switches go back, and nothing is deleted."""

from __future__ import annotations

from typing import Any

import pytest

from secretrotation.core import markers
from secretrotation.core.phases import deleted

PATH = "/spec/template/spec/volumes/0/secret/secretName"


def status(phase: str, *, switched: bool = True) -> dict[str, Any]:
    target = {"kind": "Deployment", "name": "web", "changes": [{"path": PATH, "from": "db-v1", "to": "db-v2"}]}
    return {
        "phase": phase,
        "rotation": {
            "revision": 2,
            "secret": "db-v2",
            "previousSecret": "db-v1",
            "startedAt": "2026-03-01T12:00:00Z",
            "targets": [{**target, "switched": switched}],
        },
    }


def web(secret_name: str) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"volumes": [{"name": "v", "secret": {"secretName": secret_name}}]}}}}


@pytest.mark.parametrize("phase", ["RollingOut", "Verifying", "RollingBack"])
def test_a_target_still_on_the_unverified_version_goes_back_and_the_warning_names_it(phase: str) -> None:
    judged = deleted.revert(status(phase), {("Deployment", "web"): web("db-v2")})

    assert [(p.kind, p.name, [(c.path, c.old, c.new) for c in p.changes]) for p in judged.patches] == [
        ("Deployment", "web", [(PATH, "db-v2", "db-v1")])
    ]
    assert judged.left == ()
    event = deleted.reverted(status(phase), ["Deployment web"], judged.left)
    assert event is not None and event.warning and event.reason == "RevertedOnDeletion"
    assert "Deployment web returned to db-v1" in event.message and "nothing was deleted" in event.message


def test_a_promoted_version_is_verified_and_nothing_goes_back() -> None:
    assert deleted.switched_targets(status("CollectingGarbage")) == []
    assert deleted.revert(status("CollectingGarbage"), {("Deployment", "web"): web("db-v2")}) == deleted.Revert()


def test_a_target_someone_else_changed_since_is_left_alone_and_named() -> None:
    judged = deleted.revert(status("Verifying"), {("Deployment", "web"): web("db-hand-edited")})

    assert judged == deleted.Revert(left=("Deployment web",))
    event = deleted.reverted(status("Verifying"), [], judged.left)
    assert event is not None and "Deployment web changed by someone else, left as they are" in event.message
    assert "returned" not in event.message, "nothing went back, and the Warning may not say it did"


def test_a_target_already_back_on_the_version_in_use_needs_nothing() -> None:
    assert deleted.revert(status("RollingBack"), {("Deployment", "web"): web("db-v1")}) == deleted.Revert()
    assert deleted.reverted(status("RollingBack"), [], []) is None, "no Warning when nothing was done"


def test_a_revert_also_removes_the_switch_mark_it_finds_exactly_as_found() -> None:
    marked = web("db-v2")
    marked["metadata"] = {"annotations": {markers.SWITCH_ANNOTATION: "the mark as read"}}

    [patch] = deleted.revert(status("Verifying"), {("Deployment", "web"): marked}).patches
    [unmarked] = deleted.revert(status("Verifying"), {("Deployment", "web"): web("db-v2")}).patches

    assert patch.unmark == "the mark as read", "removed only if it is still exactly what was judged"
    assert unmarked.unmark is None, "no mark, nothing to remove (a remove of a missing path would fail the patch)"
