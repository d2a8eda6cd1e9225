"""The switch mark: what a switch leaves on a workload, and how a workload of a rotation deleted unseen is judged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from secretrotation.core import markers
from secretrotation.core.markers import Orphan, Switch
from secretrotation.core.plan import PatchWorkload
from secretrotation.core.record import Change

PATH = "/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name"
SWITCH = Switch("db", "uid-1", "Secret", "db-v2", "db-v1", (Change(PATH, "db-v1", "db-v2"),))


def deployment(secret: str, *, rolled_out: bool, mark: str | None = SWITCH.encode()) -> dict[str, Any]:
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]
    status = (
        {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
        if rolled_out
        else {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1}
    )
    return {
        "kind": "Deployment",
        "metadata": {"name": "api", "generation": 2, "annotations": {markers.SWITCH_ANNOTATION: mark} if mark else {}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "env": env}]}}},
        "status": status,
    }


def test_a_mark_reads_back_as_the_switch_that_wrote_it_and_holds_no_value() -> None:
    text = SWITCH.encode()
    assert markers.decode(text) == SWITCH
    assert set(json.loads(text)) == {"rotation", "uid", "credential", "version", "previous", "changes"}


@pytest.mark.parametrize("text", [None, 7, "", "not json", "[]", '{"rotation": "db"}', '{"changes": 5}'])
def test_anything_but_a_well_formed_mark_is_not_a_mark(text: Any) -> None:
    assert markers.decode(text) is None


@pytest.mark.parametrize(
    ("workload", "previous_exists", "expected"),
    [
        pytest.param(deployment("db-v2", rolled_out=False), True, Orphan.REVERT, id="not-rolled-out"),
        pytest.param(deployment("db-v2", rolled_out=True), True, Orphan.UNMARK, id="rolled-out-works"),
        pytest.param(deployment("other", rolled_out=False), True, Orphan.UNMARK, id="changed-by-someone-else"),
        pytest.param(deployment("db-v1", rolled_out=False), True, Orphan.UNMARK, id="already-back"),
        pytest.param(deployment("db-v2", rolled_out=False), False, Orphan.UNMARK, id="nothing-to-go-back-to"),
    ],
)
def test_a_workload_of_a_rotation_deleted_unseen_goes_back_only_if_its_switch_did_not_roll_out(
    workload: dict[str, Any], previous_exists: bool, expected: Orphan
) -> None:
    assert markers.judge_orphan(SWITCH, workload, previous_exists=previous_exists) is expected


def test_the_previous_version_is_read_only_when_the_verdict_depends_on_it() -> None:
    assert markers.needs_previous(SWITCH, deployment("db-v2", rolled_out=False))
    assert not markers.needs_previous(SWITCH, deployment("db-v2", rolled_out=True))
    assert not markers.needs_previous(SWITCH, deployment("other", rolled_out=False))


MARK_PATH = "/metadata/annotations/rotation.sre.dev~1switched-by"


def test_a_switch_patch_tests_each_old_value_and_adds_the_mark_beside_existing_annotations() -> None:
    patch = PatchWorkload("Deployment", "api", SWITCH.changes, mark="m", annotated=True, resource_version="7")
    assert patch.operations() == [
        {"op": "test", "path": PATH, "value": "db-v1"},
        {"op": "replace", "path": PATH, "value": "db-v2"},
        {"op": "add", "path": MARK_PATH, "value": "m"},
    ]


def test_a_switch_patch_creates_annotations_only_on_the_exact_version_judged() -> None:
    ops = PatchWorkload("StatefulSet", "ledger", SWITCH.changes, mark="m", annotated=False, resource_version="7")
    assert ops.operations()[-2:] == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/metadata/annotations", "value": {markers.SWITCH_ANNOTATION: "m"}},
    ], "a map added over annotations someone wrote since would erase theirs"


def test_an_unmark_removes_the_mark_only_if_it_is_still_the_one_judged() -> None:
    assert PatchWorkload("Deployment", "api", (), unmark="m").operations() == [
        {"op": "test", "path": MARK_PATH, "value": "m"},
        {"op": "remove", "path": MARK_PATH},
    ]
