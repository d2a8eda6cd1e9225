"""The watch-fed store: newest wins, deletions are not undone by a late LIST, our writes come first,
a fresh LIST resyncs, and namespaces nobody needs cost nothing."""

from __future__ import annotations

from typing import Any

import pytest

from secretrotation.shell.store import Store


def pod(name: str, version: int, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(version), **extra}, "spec": {}}


def held(store: Store, namespace: str = "shop") -> dict[str, str]:
    """Pod name -> the resourceVersion held."""
    return {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in store.view(namespace).pods}


def filled(**pods: int) -> Store:
    store = Store()
    assert store.open("shop"), "a namespace opened for the first time must be filled"
    store.fill("shop", {"Pod": [pod(name, version) for name, version in pods.items()]})
    return store


def test_events_for_a_namespace_nobody_needs_are_dropped() -> None:
    store = Store()
    store.observe("Pod", "elsewhere", "ADDED", pod("a", 5))
    assert not store.holds("elsewhere") and store.size() == 0


def test_a_namespace_is_read_only_once_filled() -> None:
    store = Store()
    store.open("shop")
    with pytest.raises(LookupError):
        store.view("shop")
    store.fill("shop", {"Pod": [pod("a", 5)]})
    assert held(store) == {"a": "5"}
    assert not store.open("shop"), "a filled namespace needs no second LIST"


def test_an_older_copy_never_replaces_a_newer_one() -> None:
    store = filled(a=7)
    store.observe("Pod", "shop", "MODIFIED", pod("a", 6))
    assert held(store) == {"a": "7"}
    store.observe("Pod", "shop", "MODIFIED", pod("a", 9))
    assert held(store) == {"a": "9"}


def test_a_list_answered_before_a_deletion_does_not_bring_the_object_back() -> None:
    store = Store()
    store.open("shop")
    store.observe("Pod", "shop", "ADDED", pod("a", 5))
    store.observe("Pod", "shop", "DELETED", pod("a", 8))  # the watch saw the deletion while the LIST ran
    store.fill("shop", {"Pod": [pod("a", 5)]})  # the LIST was answered before it
    assert held(store) == {}


def test_an_object_re_created_after_its_deletion_is_taken() -> None:
    store = filled(a=5)
    store.observe("Pod", "shop", "DELETED", pod("a", 8))
    store.observe("Pod", "shop", "ADDED", pod("a", 9))
    assert held(store) == {"a": "9"}


def test_a_late_deletion_of_an_older_incarnation_keeps_the_newer_one() -> None:
    store = filled(a=9)
    store.observe("Pod", "shop", "DELETED", pod("a", 5))
    assert held(store) == {"a": "9"}


def test_our_own_write_is_held_at_once_and_a_lagging_watch_event_does_not_undo_it() -> None:
    store = filled(a=5)
    store.remember("Pod", "shop", pod("a", 12))
    store.observe("Pod", "shop", "MODIFIED", pod("a", 10))  # an event from before our write, delivered late
    assert held(store) == {"a": "12"}


def test_a_fresh_list_drops_what_it_proves_gone_and_keeps_what_is_newer_than_it() -> None:
    store = filled(gone=3, kept=4)
    store.observe("Pod", "shop", "ADDED", pod("born-after-the-list", 21))
    store.replace("shop", "Pod", [pod("kept", 4), pod("new", 15)], "20")
    assert held(store) == {"kept": "4", "new": "15", "born-after-the-list": "21"}


def test_closing_a_namespace_lets_every_object_go_and_the_next_need_lists_again() -> None:
    store = filled(a=5, b=6)
    assert store.size() == 2
    store.close("shop")
    store.observe("Pod", "shop", "MODIFIED", pod("a", 7))
    assert store.size() == 0 and not store.holds("shop")
    assert store.open("shop"), "a namespace needed again is listed again"


def test_held_objects_drop_managed_fields_and_the_last_applied_configuration() -> None:
    store = filled()
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "shop"}
    store.observe("Pod", "shop", "ADDED", pod("a", 5, managedFields=[{"manager": "kubectl"}], annotations=annotations))
    (kept,) = store.view("shop").pods
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["annotations"] == {"team": "shop"}


def test_tombstones_are_bounded() -> None:
    store = filled()
    for index in range(5000):
        store.observe("Pod", "shop", "DELETED", pod(f"p{index}", index))
    tombstones = store._namespaces["shop"].tombstones
    assert len(tombstones) <= 4096 and ("Pod", "p4999") in tombstones


def test_a_kind_counts_as_fresh_for_30s_after_its_list_and_only_then() -> None:
    clock = [1000.0]
    store = Store(clock=lambda: clock[0])
    store.open("shop")
    store.fill("shop", {"Pod": [], "Deployment": []})
    assert store.stale_kinds("shop", ["Pod", "Deployment", "Job"]) == {"Job"}, "never listed is stale"
    clock[0] += 31
    assert store.stale_kinds("shop", ["Pod", "Deployment"]) == {"Pod", "Deployment"}
    store.replace("shop", "Deployment", [], "7")
    assert store.stale_kinds("shop", ["Pod", "Deployment"]) == {"Pod"}
    assert store.stale_kinds("elsewhere", ["Pod"]) == {"Pod"}
