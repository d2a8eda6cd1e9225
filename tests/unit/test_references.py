"""Behaviour of secretrotation.core.references: finding and rewriting Secret and
ServiceAccount references in pod specs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from secretrotation.core.references import (
    MissingKey,
    RefKind,
    SecretRef,
    missing_keys,
    pod_spec_of,
    pod_spec_path,
    referenced_secrets,
    references_to,
    rewrite_secret_references,
    rewrite_service_account,
    secret_references,
    service_account_name,
)

CONTAINER_FIELDS = ["containers", "initContainers", "ephemeralContainers"]


def full_pod_spec() -> dict[str, Any]:
    """A pod spec with every reference kind, decoys that must be left alone,
    and the Secret "db" referenced in several ways."""
    return {
        "volumes": [
            {
                "name": "creds",
                "secret": {
                    "secretName": "db",
                    "items": [{"key": "password", "path": "pw"}],
                },
            },
            {
                "name": "bundle",
                "projected": {
                    "sources": [
                        {
                            "secret": {
                                "name": "db",
                                "items": [{"key": "ca.crt", "path": "ca"}],
                            }
                        },
                        {"configMap": {"name": "db"}},
                        {"secret": {"name": "tls", "optional": True}},
                    ]
                },
            },
            {"name": "db", "emptyDir": {}},
        ],
        "initContainers": [
            {
                "name": "migrate",
                "image": "migrate:1",
                "envFrom": [{"secretRef": {"name": "db"}}],
                "env": [
                    {
                        "name": "TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}},
                    }
                ],
            }
        ],
        "containers": [
            {
                "name": "app",
                "image": "app:1",
                "env": [
                    {"name": "PLAIN", "value": "db"},
                    {
                        "name": "DB_PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                    },
                    {
                        "name": "CFG",
                        "valueFrom": {"configMapKeyRef": {"name": "db", "key": "x"}},
                    },
                    {
                        "name": "DB_USER",
                        "valueFrom": {
                            "secretKeyRef": {
                                "name": "db",
                                "key": "user",
                                "optional": True,
                            }
                        },
                    },
                ],
                "envFrom": [
                    {"configMapRef": {"name": "db"}},
                    {"secretRef": {"name": "extra", "optional": True}},
                ],
            }
        ],
        "serviceAccountName": "app-sa",
        "imagePullSecrets": [{"name": "registry"}, {"name": "db"}],
    }


def ref(
    secret: str,
    kind: RefKind,
    where: str,
    keys: frozenset[str] = frozenset(),
    optional: bool = False,
) -> SecretRef:
    return SecretRef(secret=secret, kind=kind, where=where, keys=keys, optional=optional)


# Paths of every field in full_pod_spec() that names the Secret "db".
DB_NAME_PATHS: list[tuple[str | int, ...]] = [
    ("volumes", 0, "secret", "secretName"),
    ("volumes", 1, "projected", "sources", 0, "secret", "name"),
    ("initContainers", 0, "envFrom", 0, "secretRef", "name"),
    ("containers", 0, "env", 1, "valueFrom", "secretKeyRef", "name"),
    ("containers", 0, "env", 3, "valueFrom", "secretKeyRef", "name"),
    ("imagePullSecrets", 1, "name"),
]


def get_at(tree: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        tree = tree[step]
    return tree


def set_at(tree: Any, path: tuple[str | int, ...], value: Any) -> None:
    get_at(tree, path[:-1])[path[-1]] = value


# --- finding references -----------------------------------------------------


def test_secret_references_lists_every_kind_in_document_order() -> None:
    expected = [
        ref("db", RefKind.VOLUME, "volumes[creds]", frozenset({"password"})),
        ref("db", RefKind.PROJECTED, "volumes[bundle].projected", frozenset({"ca.crt"})),
        ref("tls", RefKind.PROJECTED, "volumes[bundle].projected", optional=True),
        ref("db", RefKind.ENV_FROM, "initContainers[migrate].envFrom"),
        ref(
            "api",
            RefKind.ENV_KEY,
            "initContainers[migrate].env[TOKEN]",
            frozenset({"token"}),
        ),
        ref(
            "db",
            RefKind.ENV_KEY,
            "containers[app].env[DB_PASSWORD]",
            frozenset({"password"}),
        ),
        ref(
            "db",
            RefKind.ENV_KEY,
            "containers[app].env[DB_USER]",
            frozenset({"user"}),
            True,
        ),
        ref("extra", RefKind.ENV_FROM, "containers[app].envFrom", optional=True),
        ref("registry", RefKind.IMAGE_PULL, "imagePullSecrets"),
        ref("db", RefKind.IMAGE_PULL, "imagePullSecrets"),
    ]
    found = secret_references(full_pod_spec())
    assert found == expected, f"unexpected references:\n{found}"


def container_with(kind: RefKind, optional: bool) -> dict[str, Any]:
    if kind is RefKind.ENV_KEY:
        key_ref = {"name": "s", "key": "k", "optional": optional}
        return {
            "name": "c",
            "env": [{"name": "V", "valueFrom": {"secretKeyRef": key_ref}}],
        }
    return {
        "name": "c",
        "envFrom": [{"secretRef": {"name": "s", "optional": optional}}],
    }


@pytest.mark.parametrize("field", CONTAINER_FIELDS)
@pytest.mark.parametrize(
    ("kind", "where", "keys"),
    [
        (RefKind.ENV_KEY, "{field}[c].env[V]", frozenset({"k"})),
        (RefKind.ENV_FROM, "{field}[c].envFrom", frozenset()),
    ],
)
@pytest.mark.parametrize("optional", [False, True])
def test_container_references_are_found_in_every_container_list(
    field: str, kind: RefKind, where: str, keys: frozenset[str], optional: bool
) -> None:
    spec = {field: [container_with(kind, optional)]}
    expected = [ref("s", kind, where.format(field=field), keys, optional)]
    assert secret_references(spec) == expected, f"{kind} in {field} not found as expected"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"volumes": [{"name": "v", "secret": {"secretName": "s"}}]},
            ref("s", RefKind.VOLUME, "volumes[v]"),
            id="volume-whole-secret",
        ),
        pytest.param(
            {
                "volumes": [
                    {
                        "name": "v",
                        "secret": {
                            "secretName": "s",
                            "optional": True,
                            "items": [
                                {"key": "a", "path": "x"},
                                {"key": "b", "path": "y"},
                            ],
                        },
                    }
                ]
            },
            ref("s", RefKind.VOLUME, "volumes[v]", frozenset({"a", "b"}), optional=True),
            id="volume-items-optional",
        ),
        pytest.param(
            {"volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "s"}}]}}]},
            ref("s", RefKind.PROJECTED, "volumes[v].projected"),
            id="projected-whole-secret",
        ),
        pytest.param(
            {
                "volumes": [
                    {
                        "name": "v",
                        "projected": {
                            "sources": [
                                {
                                    "secret": {
                                        "name": "s",
                                        "optional": True,
                                        "items": [{"key": "a", "path": "x"}],
                                    }
                                }
                            ]
                        },
                    }
                ]
            },
            ref(
                "s",
                RefKind.PROJECTED,
                "volumes[v].projected",
                frozenset({"a"}),
                optional=True,
            ),
            id="projected-items-optional",
        ),
        pytest.param(
            {"imagePullSecrets": [{"name": "s"}]},
            ref("s", RefKind.IMAGE_PULL, "imagePullSecrets"),
            id="image-pull",
        ),
    ],
)
def test_pod_level_references_carry_kind_path_keys_and_optionality(spec: dict[str, Any], expected: SecretRef) -> None:
    assert secret_references(spec) == [expected]


def test_nameless_entries_are_labelled_by_their_index() -> None:
    spec = {
        "containers": [
            {"env": [{"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
        ],
        "volumes": [{"secret": {"secretName": "s"}}],
    }
    wheres = [found.where for found in secret_references(spec)]
    assert wheres == ["containers[0].env[0]", "volumes[0]"]


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({}, id="empty"),
        pytest.param(
            {
                "containers": None,
                "initContainers": None,
                "ephemeralContainers": None,
                "volumes": None,
                "imagePullSecrets": None,
            },
            id="null-lists",
        ),
        pytest.param({"containers": [None, {"env": None, "envFrom": None}]}, id="null-container"),
        pytest.param(
            {"containers": [{"env": [None, {"name": "A", "valueFrom": None}]}]},
            id="null-env",
        ),
        pytest.param(
            {"containers": [{"env": [{"name": "A", "valueFrom": {"secretKeyRef": None}}]}]},
            id="null-secretKeyRef",
        ),
        pytest.param(
            {"containers": [{"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"key": "k"}}}]}]},
            id="secretKeyRef-without-name",
        ),
        pytest.param(
            {"containers": [{"envFrom": [{"secretRef": None}, None]}]},
            id="null-envFrom",
        ),
        pytest.param(
            {"volumes": [None, {"secret": None}, {"secret": {"items": None}}]},
            id="null-volume",
        ),
        pytest.param(
            {"volumes": [{"projected": None}, {"projected": {"sources": None}}]},
            id="null-projected",
        ),
        pytest.param(
            {"volumes": [{"projected": {"sources": [None, {"secret": None}]}}]},
            id="null-source",
        ),
        pytest.param(
            {"imagePullSecrets": [None, {}, {"name": None}, {"name": ""}]},
            id="null-pull",
        ),
    ],
)
def test_missing_and_null_fields_are_read_as_no_references(
    spec: dict[str, Any],
) -> None:
    before = copy.deepcopy(spec)
    assert secret_references(spec) == []
    assert rewrite_secret_references(spec, "s", "t") == (before, 0)
    assert spec == before, "reading must not mutate the input"


def test_null_items_and_keyless_items_add_no_keys() -> None:
    spec = {
        "volumes": [
            {
                "name": "v",
                "secret": {
                    "secretName": "s",
                    "items": [None, {"path": "x"}, {"key": "a"}],
                },
            }
        ]
    }
    assert secret_references(spec)[0].keys == frozenset({"a"})


def test_referenced_secrets_names_each_secret_once() -> None:
    assert referenced_secrets(full_pod_spec()) == {
        "db",
        "tls",
        "api",
        "extra",
        "registry",
    }


def test_references_to_keeps_only_the_named_secret_in_document_order() -> None:
    wheres = [(found.kind, found.where) for found in references_to(full_pod_spec(), "db")]
    assert wheres == [
        (RefKind.VOLUME, "volumes[creds]"),
        (RefKind.PROJECTED, "volumes[bundle].projected"),
        (RefKind.ENV_FROM, "initContainers[migrate].envFrom"),
        (RefKind.ENV_KEY, "containers[app].env[DB_PASSWORD]"),
        (RefKind.ENV_KEY, "containers[app].env[DB_USER]"),
        (RefKind.IMAGE_PULL, "imagePullSecrets"),
    ]
    assert references_to(full_pod_spec(), "absent") == []


# --- required and missing keys ----------------------------------------------


def test_only_non_optional_key_refs_and_items_need_keys() -> None:
    # "user" is read only through an optional secretKeyRef, so it is not required.
    assert {m.key for m in missing_keys(full_pod_spec(), "db", ())} == {"password", "ca.crt"}


@pytest.mark.parametrize(
    "optional_source",
    [
        pytest.param(
            {"containers": [container_with(RefKind.ENV_KEY, optional=True)]},
            id="env-key",
        ),
        pytest.param(
            {
                "volumes": [
                    {
                        "name": "v",
                        "secret": {
                            "secretName": "s",
                            "optional": True,
                            "items": [{"key": "k"}],
                        },
                    }
                ]
            },
            id="volume-items",
        ),
        pytest.param(
            {
                "volumes": [
                    {
                        "name": "v",
                        "projected": {
                            "sources": [
                                {
                                    "secret": {
                                        "name": "s",
                                        "optional": True,
                                        "items": [{"key": "k"}],
                                    }
                                }
                            ]
                        },
                    }
                ]
            },
            id="projected-items",
        ),
    ],
)
def test_optional_references_require_no_keys(optional_source: dict[str, Any]) -> None:
    assert {m.key for m in missing_keys(optional_source, "s", ())} == frozenset()
    assert missing_keys(optional_source, "s", available_keys=()) == []


def test_whole_secret_references_require_no_keys() -> None:
    spec = {
        "containers": [container_with(RefKind.ENV_FROM, optional=False)],
        "volumes": [{"name": "v", "secret": {"secretName": "s"}}],
        "imagePullSecrets": [{"name": "s"}],
    }
    assert {m.key for m in missing_keys(spec, "s", ())} == frozenset()


def test_missing_keys_pairs_each_reference_with_each_absent_key_in_stable_order() -> None:
    spec = {
        "containers": [
            {
                "name": "app",
                "env": [
                    {
                        "name": "PW",
                        "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}},
                    }
                ],
            }
        ],
        "volumes": [
            {
                "name": "files",
                "secret": {
                    "secretName": "s",
                    "items": [{"key": "z.pem"}, {"key": "a.pem"}, {"key": "pw"}],
                },
            }
        ],
    }
    missing = missing_keys(spec, "s", available_keys={"a.pem"})
    assert [(m.ref.where, m.key) for m in missing] == [
        ("containers[app].env[PW]", "pw"),
        ("volumes[files]", "pw"),
        ("volumes[files]", "z.pem"),
    ]


def test_missing_keys_is_empty_when_the_secret_holds_every_required_key() -> None:
    assert missing_keys(full_pod_spec(), "db", ["password", "ca.crt"]) == []


def test_missing_keys_result_unpacks_as_reference_and_key() -> None:
    [missing] = missing_keys(full_pod_spec(), "api", available_keys=())
    found_ref, key = missing
    assert isinstance(missing, MissingKey)
    assert (found_ref.where, key) == ("initContainers[migrate].env[TOKEN]", "token")


# --- rewriting Secret references ---------------------------------------------


def test_rewrite_changes_only_references_to_the_old_name() -> None:
    original = full_pod_spec()
    rewritten, count = rewrite_secret_references(original, "db", "db-v2")

    assert count == len(DB_NAME_PATHS) == 6
    for path in DB_NAME_PATHS:
        assert get_at(rewritten, path) == "db-v2", f"{path} was not rewritten"
    # Restoring exactly the known fields must give back the original, byte for byte.
    restored = copy.deepcopy(rewritten)
    for path in DB_NAME_PATHS:
        set_at(restored, path, "db")
    assert restored == original, "rewrite changed something other than the references"
    assert repr(restored) == repr(original), "rewrite changed key order"


def test_rewrite_leaves_other_secrets_and_same_named_decoys_alone() -> None:
    rewritten, _ = rewrite_secret_references(full_pod_spec(), "db", "db-v2")
    assert referenced_secrets(rewritten) == {"db-v2", "tls", "api", "extra", "registry"}
    # A volume, a ConfigMap and a plain env value all named "db" are not Secret references.
    assert rewritten["volumes"][2]["name"] == "db"
    assert rewritten["volumes"][1]["projected"]["sources"][1] == {"configMap": {"name": "db"}}
    assert rewritten["containers"][0]["env"][0] == {"name": "PLAIN", "value": "db"}
    assert rewritten["containers"][0]["envFrom"][0] == {"configMapRef": {"name": "db"}}


def test_rewriting_back_restores_the_original_exactly() -> None:
    original = full_pod_spec()
    there, count_there = rewrite_secret_references(original, "db", "db-v2")
    back, count_back = rewrite_secret_references(there, "db-v2", "db")
    assert count_there == count_back
    assert repr(back) == repr(original)


@pytest.mark.parametrize("field", CONTAINER_FIELDS)
@pytest.mark.parametrize("kind", [RefKind.ENV_KEY, RefKind.ENV_FROM])
def test_rewrite_reaches_every_container_list(field: str, kind: RefKind) -> None:
    spec = {field: [container_with(kind, optional=False)]}
    rewritten, count = rewrite_secret_references(spec, "s", "t")
    assert count == 1
    assert [found.secret for found in secret_references(rewritten)] == ["t"]


def test_a_native_sidecar_is_a_consumer_found_read_for_keys_and_rewritten() -> None:
    # Kubernetes 1.29+: an init container with restartPolicy Always runs beside the app.
    sidecar = {
        "name": "proxy",
        "restartPolicy": "Always",
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "token"}}}],
        "envFrom": [{"secretRef": {"name": "db"}}],
        "volumeMounts": [{"name": "creds", "mountPath": "/creds"}],
    }
    spec = {
        "initContainers": [sidecar],
        "containers": [{"name": "app"}],
        "volumes": [{"name": "creds", "secret": {"secretName": "db"}}],
    }

    found = [(r.kind, r.where) for r in references_to(spec, "db")]
    rewritten, count = rewrite_secret_references(spec, "db", "db-v2")

    assert found == [
        (RefKind.ENV_KEY, "initContainers[proxy].env[TOKEN]"),
        (RefKind.ENV_FROM, "initContainers[proxy].envFrom"),
        (RefKind.VOLUME, "volumes[creds]"),
    ]
    assert [(m.ref.where, m.key) for m in missing_keys(spec, "db", {"password"})] == [
        ("initContainers[proxy].env[TOKEN]", "token")
    ]
    assert count == 3 and referenced_secrets(rewritten) == {"db-v2"}
    assert rewritten["initContainers"][0]["restartPolicy"] == "Always", "nothing but the names changes"


def test_rewrite_never_mutates_its_input_and_returns_an_independent_copy() -> None:
    original = full_pod_spec()
    snapshot = copy.deepcopy(original)
    rewritten, _ = rewrite_secret_references(original, "db", "db-v2")
    assert original == snapshot, "input was mutated"
    rewritten["containers"][0]["image"] = "changed"
    assert original["containers"][0]["image"] == "app:1", "copy shares nested objects with input"


def test_rewrite_of_an_unreferenced_name_returns_an_equal_copy_and_zero() -> None:
    original = full_pod_spec()
    rewritten, count = rewrite_secret_references(original, "absent", "new")
    assert (rewritten, count) == (original, 0)
    assert rewritten is not original


# --- service accounts -------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"serviceAccountName": "sa", "serviceAccount": "old"}, "sa"),
        ({"serviceAccount": "legacy"}, "legacy"),
        ({"serviceAccountName": None, "serviceAccount": "legacy"}, "legacy"),
        ({"serviceAccountName": ""}, "default"),
        ({}, "default"),
    ],
)
def test_service_account_name_falls_back_to_the_deprecated_field_then_default(
    spec: dict[str, Any], expected: str
) -> None:
    assert service_account_name(spec) == expected


@pytest.mark.parametrize(
    ("spec", "old", "expected", "expected_count"),
    [
        pytest.param(
            {"serviceAccountName": "a", "serviceAccount": "a", "x": 1},
            "a",
            {"serviceAccountName": "b", "serviceAccount": "b", "x": 1},
            1,
            id="both-fields",
        ),
        pytest.param(
            {"serviceAccountName": "a"},
            "a",
            {"serviceAccountName": "b"},
            1,
            id="name-only",
        ),
        pytest.param(
            {"serviceAccount": "a"},
            "a",
            {"serviceAccount": "b", "serviceAccountName": "b"},
            1,
            id="deprecated-only",
        ),
        pytest.param({}, "default", {"serviceAccountName": "b"}, 1, id="implicit-default"),
        pytest.param(
            {"serviceAccountName": "other"},
            "a",
            {"serviceAccountName": "other"},
            0,
            id="different-account",
        ),
        pytest.param({}, "a", {}, 0, id="default-is-not-old"),
    ],
)
def test_rewrite_service_account_renames_only_the_old_account(
    spec: dict[str, Any], old: str, expected: dict[str, Any], expected_count: int
) -> None:
    before = copy.deepcopy(spec)
    rewritten, count = rewrite_service_account(spec, old, "b")
    assert (rewritten, count) == (expected, expected_count)
    assert spec == before, "input was mutated"


def test_rewrite_service_account_leaves_secret_references_alone() -> None:
    original = full_pod_spec()
    rewritten, count = rewrite_service_account(original, "app-sa", "app-sa-v2")
    assert count == 1
    rewritten["serviceAccountName"] = "app-sa"
    assert repr(rewritten) == repr(original)


# --- locating the pod spec --------------------------------------------------

POD_SPEC = {"containers": [{"name": "app"}]}


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "Pod", "spec": POD_SPEC},
        *(
            {"kind": kind, "spec": {"template": {"spec": POD_SPEC}}}
            for kind in ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]
        ),
        {
            "kind": "CronJob",
            "spec": {"jobTemplate": {"spec": {"template": {"spec": POD_SPEC}}}},
        },
    ],
    ids=lambda obj: obj["kind"],
)
def test_pod_spec_of_finds_the_pod_spec_of_each_kind(obj: dict[str, Any]) -> None:
    assert pod_spec_of(obj) == POD_SPEC
    assert get_at(obj, pod_spec_path(obj["kind"])) == POD_SPEC


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "Pod"},
        {"kind": "Deployment", "spec": None},
        {"kind": "StatefulSet", "spec": {"template": None}},
        {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {}}}},
    ],
)
def test_pod_spec_of_an_object_without_one_is_empty(obj: dict[str, Any]) -> None:
    assert pod_spec_of(obj) == {}


@pytest.mark.parametrize("obj", [{"kind": "ConfigMap"}, {}])
def test_pod_spec_of_an_unknown_kind_raises_naming_the_kind(
    obj: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match=repr(str(obj.get("kind")))):
        pod_spec_of(obj)
