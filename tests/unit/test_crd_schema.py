"""crds/secretrotation.yaml is structural, portable to Kubernetes 1.20, and
agrees with the operator's parser (secretrotation.core.spec.parse_spec).

The agreement check runs each example through what the API server does to a
new object (prune unknown fields, fill defaults, validate) with a small
evaluator of the schema keywords the CRD uses, then through parse_spec. The
real API server is exercised by the integration tests.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from secretrotation.core import names
from secretrotation.core import spec as model
from secretrotation.core.spec import InvalidSpec, parse_spec

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "secretrotation.yaml"
JUNCTORS = ("oneOf", "anyOf", "allOf", "not")
# What a structural schema may not say inside oneOf/anyOf/allOf/not.
FORBIDDEN_IN_JUNCTORS = ("type", "default", "description", "nullable", "additionalProperties")


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return document


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    served: dict[str, Any] = only
    return served


@pytest.fixture(scope="module")
def root(version: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


@pytest.fixture(scope="module")
def spec_schema(root: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = root["properties"]["spec"]
    return schema


# --- A small evaluator of the schema subset the CRD uses -----------------------


def admit(schema: dict[str, Any], value: Any) -> Any:
    """What the API server stores for ``value``: unknown fields pruned, then defaults filled."""
    if isinstance(value, dict) and schema.get("type") == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return value
        if isinstance(extra, dict):
            return {key: admit(extra, item) for key, item in value.items()}
        properties = properties or {}
        admitted = {key: admit(properties[key], item) for key, item in value.items() if key in properties}
        for key, sub in properties.items():
            if key not in admitted and "default" in sub:
                admitted[key] = admit(sub, copy.deepcopy(sub["default"]))
        return admitted
    if isinstance(value, list) and "items" in schema:
        return [admit(schema["items"], item) for item in value]
    return value


TYPE_CHECKS = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
}


def go_pattern_matches(pattern: str, text: str) -> bool:
    # Go's regexp.MatchString searches; its "$" (no multiline) matches only at
    # the very end, where Python's also matches before a final newline.
    return re.search(pattern.replace("$", r"\Z"), text) is not None


def violations(schema: dict[str, Any], value: Any, path: str = "spec") -> Iterator[str]:
    """Every way ``value`` breaks ``schema`` (keywords used by the CRD only)."""
    if "type" in schema and not TYPE_CHECKS[schema["type"]](value):
        yield f"{path}: not {schema['type']}"
        return
    if "enum" in schema and value not in schema["enum"]:
        yield f"{path}: not in enum"
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)) or len(value) < schema.get("minLength", 0):
            yield f"{path}: length"
        if "pattern" in schema and not go_pattern_matches(schema["pattern"], value):
            yield f"{path}: pattern"
    if isinstance(value, int) and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        yield f"{path}: range"
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            yield f"{path}: item count"
        if schema.get("x-kubernetes-list-type") == "map":
            keys = [tuple(item.get(key) for key in schema["x-kubernetes-list-map-keys"]) for item in value]
            if len(set(keys)) != len(keys):
                yield f"{path}: duplicate map keys"
        for index, item in enumerate(value):
            yield from violations(schema.get("items", {}), item, f"{path}[{index}]")
    if isinstance(value, dict):
        if not schema.get("minProperties", 0) <= len(value) <= schema.get("maxProperties", len(value)):
            yield f"{path}: property count"
        yield from (f"{path}.{key}: required" for key in schema.get("required", ()) if key not in value)
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from violations(sub, item, f"{path}.{key}")
    if "oneOf" in schema and sum(not any(violations(branch, value, path)) for branch in schema["oneOf"]) != 1:
        yield f"{path}: oneOf"
    if "anyOf" in schema and all(any(violations(branch, value, path)) for branch in schema["anyOf"]):
        yield f"{path}: anyOf"
    if "not" in schema and not any(violations(schema["not"], value, path)):
        yield f"{path}: not"


def schema_nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """The structural skeleton: the node, its properties, items and additionalProperties, recursively."""
    yield path or "<root>", schema
    for key, sub in schema.get("properties", {}).items():
        yield from schema_nodes(sub, f"{path}.{key}")
    if "items" in schema:
        yield from schema_nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from schema_nodes(schema["additionalProperties"], f"{path}{{}}")


def junctor_branches(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every schema inside oneOf/anyOf/allOf/not of ``schema``, nested ones included."""
    for junctor in JUNCTORS:
        branches = schema.get(junctor)
        for branch in [branches] if isinstance(branches, dict) else branches or []:
            yield branch
            yield from junctor_branches(branch)


def walk(document: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield key, value
            yield from walk(value)
    elif isinstance(document, list):
        for item in document:
            yield from walk(item)


# --- Structural and portable -------------------------------------------------


def test_the_crd_names_what_the_operator_uses(crd: dict[str, Any], version: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{names.PLURAL}.{names.GROUP}"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == (names.GROUP, "Namespaced")
    assert spec["names"] == {
        "kind": names.KIND,
        "listKind": f"{names.KIND}List",
        "plural": names.PLURAL,
        "singular": "secretrotation",
        "shortNames": ["srot"],
    }
    assert (version["name"], version["served"], version["storage"]) == (names.VERSION, True, True)
    assert version["subresources"] == {"status": {}}


def test_every_node_of_the_skeleton_has_a_type(root: dict[str, Any]) -> None:
    untyped = [path for path, node in schema_nodes(root) if "type" not in node]
    assert untyped == []


def test_no_cel_anywhere(crd: dict[str, Any]) -> None:
    assert "x-kubernetes-validations" not in {key for key, _ in walk(crd)}


def test_junctors_only_constrain_fields_the_skeleton_declares(root: dict[str, Any]) -> None:
    for path, node in schema_nodes(root):
        for branch in junctor_branches(node):
            assert not set(FORBIDDEN_IN_JUNCTORS) & set(branch), f"{path}: {branch}"
            declared = node.get("properties", {})
            assert set(branch.get("properties", {})) <= set(declared), path
            assert set(branch.get("required", ())) <= set(declared), path


def test_no_default_decides_a_junctor(root: dict[str, Any]) -> None:
    # A default on a field a junctor tests with `required` would make the
    # branch see the default rather than what the user wrote (this is why
    # spec.type has no default: serviceAccount specs must not have a type).
    for path, node in schema_nodes(root):
        for branch in junctor_branches(node):
            for key in branch.get("required", ()):
                assert "default" not in node["properties"][key], f"{path}.{key}"


def test_properties_and_additional_properties_are_never_combined(root: dict[str, Any]) -> None:
    for path, node in schema_nodes(root):
        assert not ("properties" in node and "additionalProperties" in node), path


def test_metadata_only_restricts_the_name(root: dict[str, Any]) -> None:
    metadata = root["properties"]["metadata"]
    assert set(metadata["properties"]) <= {"name", "generateName"}
    # The name is a label value on every version, so it must fit in one.
    assert metadata["properties"]["name"]["maxLength"] == 63


def test_unknown_fields_are_kept_only_in_the_snapshot(root: dict[str, Any]) -> None:
    preserved = [path for path, node in schema_nodes(root) if node.get("x-kubernetes-preserve-unknown-fields")]
    assert preserved == [".status.rotation.spec"]


def test_every_default_is_valid_for_its_field(root: dict[str, Any]) -> None:
    defaults = [(path, node) for path, node in schema_nodes(root) if "default" in node]
    assert defaults
    for path, node in defaults:
        assert list(violations(node, node["default"], path)) == []


def test_no_field_can_name_a_namespace(root: dict[str, Any]) -> None:
    spec_fields = {path for path, _ in schema_nodes(root["properties"]["spec"])}
    assert not [path for path in spec_fields if "namespace" in path.lower()]


# --- Printer columns and status ---------------------------------------------------


def test_printer_columns(version: dict[str, Any]) -> None:
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    ready = '.status.conditions[?(@.type=="Ready")]'
    expected = {
        "Ready": ("string", f"{ready}.status", 0),
        "Reason": ("string", f"{ready}.reason", 1),
        "Revision": ("integer", ".status.revision", 0),
        "Current": ("string", ".status.currentSecret", 0),
        "Phase": ("string", ".status.phase", 1),
        "Last Rotation": ("date", ".status.lastRotationTime", 0),
        "Age": ("date", ".metadata.creationTimestamp", 0),
    }
    assert list(columns) == list(expected)
    for name, (kind, json_path, priority) in expected.items():
        assert (columns[name]["type"], columns[name]["jsonPath"], columns[name].get("priority", 0)) == (
            kind,
            json_path,
            priority,
        ), name


def test_conditions_follow_metav1_condition(root: dict[str, Any]) -> None:
    conditions = root["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    fields = item["properties"]
    assert fields["status"]["enum"] == ["True", "False", "Unknown"]
    assert fields["reason"]["pattern"] == "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    assert (fields["reason"]["minLength"], fields["reason"]["maxLength"]) == (1, 1024)
    assert fields["message"]["maxLength"] == 32768
    assert fields["lastTransitionTime"]["format"] == "date-time"
    good = {"type": "Ready", "status": "True", "lastTransitionTime": "t", "reason": "RotationComplete", "message": ""}
    assert list(violations(item, good)) == []
    assert list(violations(item, {**good, "reason": "rotation complete"})) != []


# --- The schema and the parser share their rules --------------------------------


def test_patterns_are_the_parsers(spec_schema: dict[str, Any]) -> None:
    fields = spec_schema["properties"]
    target = fields["targets"]["items"]["properties"]
    selector = target["selector"]["properties"]
    expression = selector["matchExpressions"]["items"]["properties"]
    assert {
        fields["secretName"]["pattern"],
        fields["from"]["properties"]["secretName"]["pattern"],
        fields["serviceAccount"]["properties"]["name"]["pattern"],
        target["name"]["pattern"],
    } == {model.DNS1123_SUBDOMAIN_PATTERN}
    assert fields["generate"]["items"]["properties"]["key"]["pattern"] == model.SECRET_KEY_PATTERN
    assert {fields["rotateEvery"]["pattern"]} | {
        duration["pattern"] for duration in fields["verify"]["properties"].values()
    } == {model.DURATION_PATTERN}
    assert expression["key"]["pattern"] == model.LABEL_KEY_PATTERN
    assert {
        selector["matchLabels"]["additionalProperties"]["pattern"],
        expression["values"]["items"]["pattern"],
    } == {model.LABEL_VALUE_PATTERN}


def test_enums_and_limits_are_the_parsers(spec_schema: dict[str, Any]) -> None:
    fields = spec_schema["properties"]
    entry = fields["generate"]["items"]["properties"]
    target = fields["targets"]["items"]["properties"]
    selector = target["selector"]["properties"]
    expression = selector["matchExpressions"]["items"]["properties"]
    assert fields["type"]["enum"] == [member.value for member in model.SecretType]
    assert not model.REFUSED_SECRET_TYPES & set(fields["type"]["enum"])
    assert entry["alphabet"]["enum"] == [member.value for member in model.Alphabet]
    assert target["kind"]["enum"] == [member.value for member in model.WorkloadKind]
    assert expression["operator"]["enum"] == list(model.SELECTOR_OPERATORS)
    assert fields["secretName"]["maxLength"] == names.MAX_BASE_NAME_LENGTH
    assert fields["serviceAccount"]["properties"]["name"]["maxLength"] == names.MAX_BASE_NAME_LENGTH
    assert (entry["length"]["minimum"], entry["length"]["maximum"]) == (model.MIN_LENGTH, model.MAX_LENGTH)
    assert entry["value"]["maxLength"] == model.MAX_CONSTANT_LENGTH
    assert (fields["retain"]["minimum"], fields["retain"]["maximum"]) == (0, model.MAX_RETAIN)
    assert fields["retain"]["default"] == model.DEFAULT_RETAIN
    assert (fields["generate"]["maxItems"], fields["targets"]["maxItems"]) == (
        model.MAX_GENERATE_RULES,
        model.MAX_TARGETS,
    )
    assert selector["matchLabels"]["maxProperties"] == model.MAX_MATCH_LABELS
    assert selector["matchExpressions"]["maxItems"] == model.MAX_MATCH_EXPRESSIONS
    assert expression["values"]["maxItems"] == model.MAX_SELECTOR_VALUES


def test_schema_defaults_are_the_parsers(spec_schema: dict[str, Any]) -> None:
    for raw in ({"secretName": "db", "generate": [{"key": "password"}]}, {"serviceAccount": {"name": "deployer"}}):
        stored = admit(spec_schema, raw)
        assert stored != raw  # the schema did fill something in
        assert parse_spec(stored) == parse_spec(raw)


DNS = "db-credentials"
GEN = [{"key": "password"}]


def sel(**selector: Any) -> dict[str, Any]:
    return {"secretName": DNS, "generate": GEN, "targets": [{"kind": "Deployment", "selector": selector}]}


# valid: both accept. invalid: both refuse. parser-only: a rule the schema cannot express.
EXAMPLES = [
    pytest.param({"secretName": DNS, "generate": GEN}, "valid", id="minimal"),
    pytest.param(
        {
            "secretName": DNS,
            "type": "kubernetes.io/basic-auth",
            "generate": [
                {"key": "password", "length": 64, "alphabet": "ascii"},
                {"key": "username", "value": "shop"},
                {"key": ".hidden", "alphabet": "hex"},
                {"key": "k", "length": 8},
            ],
            "rotateEvery": "720h",
            "verify": {"timeout": "10s", "stableFor": "0s"},
            "retain": 0,
            "paused": True,
        },
        "valid",
        id="full-generate",
    ),
    pytest.param({"secretName": DNS, "from": {"secretName": "next"}}, "valid", id="from"),
    pytest.param({"serviceAccount": {"name": "deployer", "tokenSecret": True}, "retain": 10}, "valid", id="account"),
    pytest.param({"secretName": "a" * 241, "generate": GEN}, "valid", id="longest-name"),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "targets": [{"kind": "Deployment", "name": "api"}]}, "valid", id="named"
    ),
    pytest.param(
        sel(
            matchLabels={"app.kubernetes.io/name": "api"},
            matchExpressions=[
                {"key": "tier", "operator": "In", "values": ["db"]},
                {"key": "tier", "operator": "NotIn", "values": ["cache"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "app", "operator": "Exists", "values": []},
            ],
        ),
        "valid",
        id="selector",
    ),
    pytest.param(
        {
            "secretName": DNS,
            "type": "kubernetes.io/dockerconfigjson",
            "generate": [{"key": ".dockerconfigjson", "value": "{}"}],
        },
        "valid",
        id="docker-config",
    ),
    pytest.param({"secretName": DNS, "generate": GEN, "namespace": "other"}, "valid", id="unknown-field-is-pruned"),
    pytest.param({"generate": GEN}, "invalid", id="no-credential"),
    pytest.param(
        {"secretName": DNS, "serviceAccount": {"name": "d"}, "generate": GEN}, "invalid", id="both-credentials"
    ),
    pytest.param({"secretName": DNS}, "invalid", id="no-source"),
    pytest.param({"secretName": DNS, "generate": GEN, "from": {"secretName": "n"}}, "invalid", id="two-sources"),
    pytest.param({"serviceAccount": {"name": "d"}, "generate": GEN}, "invalid", id="account-generate"),
    pytest.param({"serviceAccount": {"name": "d"}, "from": {"secretName": "n"}}, "invalid", id="account-from"),
    pytest.param({"serviceAccount": {"name": "d"}, "type": "Opaque"}, "invalid", id="account-type"),
    pytest.param({"serviceAccount": {}}, "invalid", id="account-without-name"),
    pytest.param({"secretName": "a" * 242, "generate": GEN}, "invalid", id="name-too-long"),
    pytest.param({"secretName": "Db", "generate": GEN}, "invalid", id="name-upper"),
    pytest.param({"secretName": "db\n", "generate": GEN}, "invalid", id="name-newline"),
    pytest.param({"secretName": DNS, "from": {"secretName": "a/b"}}, "invalid", id="from-slash"),
    pytest.param(
        {"secretName": DNS, "type": "kubernetes.io/service-account-token", "generate": GEN}, "invalid", id="sa-token"
    ),
    pytest.param(
        {"secretName": DNS, "type": "bootstrap.kubernetes.io/token", "generate": GEN}, "invalid", id="bootstrap"
    ),
    pytest.param({"secretName": DNS, "generate": []}, "invalid", id="generate-empty"),
    pytest.param({"secretName": DNS, "generate": [{"key": str(i)} for i in range(65)]}, "invalid", id="generate-65"),
    pytest.param({"secretName": DNS, "generate": [{"key": "p"}, {"key": "p"}]}, "invalid", id="duplicate-key"),
    pytest.param(
        {"secretName": DNS, "generate": [{"key": "u", "value": "x", "length": 8}]}, "invalid", id="value-length"
    ),
    pytest.param(
        {"secretName": DNS, "generate": [{"key": "u", "value": "x", "alphabet": "hex"}]}, "invalid", id="value-alphabet"
    ),
    pytest.param({"secretName": DNS, "generate": [{"key": "p", "length": 7}]}, "invalid", id="length-7"),
    pytest.param({"secretName": DNS, "generate": [{"key": "p", "length": "8"}]}, "invalid", id="length-string"),
    pytest.param({"secretName": DNS, "generate": [{"key": "p", "alphabet": "b32"}]}, "invalid", id="alphabet"),
    pytest.param({"secretName": DNS, "generate": [{"key": ".."}]}, "invalid", id="key-dotdot"),
    pytest.param({"secretName": DNS, "generate": [{"key": "..x"}]}, "invalid", id="key-dotdot-prefix"),
    pytest.param({"secretName": DNS, "generate": [{"key": "u", "value": "v" * 4097}]}, "invalid", id="value-4097"),
    pytest.param({"secretName": DNS, "generate": GEN, "targets": []}, "invalid", id="targets-empty"),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "targets": [{"kind": "Job", "name": "j"}]}, "invalid", id="kind-job"
    ),
    pytest.param({"secretName": DNS, "generate": GEN, "targets": [{"kind": "Deployment"}]}, "invalid", id="no-ref"),
    pytest.param(
        {
            "secretName": DNS,
            "generate": GEN,
            "targets": [{"kind": "Deployment", "name": "a", "selector": {"matchLabels": {"app": "a"}}}],
        },
        "invalid",
        id="name-and-selector",
    ),
    pytest.param(sel(), "invalid", id="selector-empty"),
    pytest.param(sel(matchExpressions=[{"key": "t", "operator": "In"}]), "invalid", id="in-without-values"),
    pytest.param(sel(matchExpressions=[{"key": "t", "operator": "NotIn", "values": []}]), "invalid", id="notin-empty"),
    pytest.param(sel(matchExpressions=[{"key": "t", "operator": "Exists", "values": ["x"]}]), "invalid", id="exists-v"),
    pytest.param(sel(matchExpressions=[{"key": "t", "operator": "Equals", "values": ["x"]}]), "invalid", id="equals"),
    pytest.param(sel(matchExpressions=[{"key": "-t", "operator": "Exists"}]), "invalid", id="expression-key"),
    pytest.param(sel(matchLabels={f"k{i}": "v" for i in range(33)}), "invalid", id="labels-33"),
    pytest.param(sel(matchLabels={"app": "a b"}), "invalid", id="label-value"),
    pytest.param({"secretName": DNS, "generate": GEN, "rotateEvery": "1d"}, "invalid", id="rotate-days"),
    pytest.param({"secretName": DNS, "generate": GEN, "rotateEvery": "1.5h"}, "invalid", id="rotate-fraction"),
    pytest.param({"secretName": DNS, "generate": GEN, "verify": {"timeout": "10 m"}}, "invalid", id="timeout-space"),
    pytest.param({"secretName": DNS, "generate": GEN, "retain": 11}, "invalid", id="retain-11"),
    pytest.param({"secretName": DNS, "generate": GEN, "retain": -1}, "invalid", id="retain-negative"),
    pytest.param({"secretName": DNS, "generate": GEN, "paused": "no"}, "invalid", id="paused-string"),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "targets": [{"kind": "Deployment", "name": "a"}] * 2},
        "parser-only",
        id="duplicate-target",
    ),
    pytest.param(sel(matchLabels={}), "parser-only", id="selector-with-empty-labels"),
    pytest.param(sel(matchLabels={"example.com/" + "n" * 64: "v"}), "parser-only", id="label-name-64"),
    pytest.param({"secretName": DNS, "generate": GEN, "rotateEvery": "59s"}, "parser-only", id="rotate-59s"),
    pytest.param({"secretName": DNS, "generate": GEN, "rotateEvery": "8761h"}, "parser-only", id="rotate-8761h"),
    pytest.param({"secretName": DNS, "generate": GEN, "verify": {"timeout": "9s"}}, "parser-only", id="timeout-9s"),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "verify": {"timeout": "1m", "stableFor": "1m"}},
        "parser-only",
        id="stable-not-below-timeout",
    ),
    pytest.param({"secretName": DNS, "from": {"secretName": DNS}}, "parser-only", id="from-itself"),
    pytest.param({"secretName": DNS, "from": {"secretName": f"{DNS}-v2"}}, "parser-only", id="from-own-version"),
    pytest.param(
        {"secretName": DNS, "type": "kubernetes.io/tls", "generate": [{"key": "tls.crt"}]},
        "parser-only",
        id="tls-without-key",
    ),
    pytest.param(
        {"secretName": DNS, "type": "kubernetes.io/dockerconfigjson", "generate": [{"key": ".dockerconfigjson"}]},
        "parser-only",
        id="docker-config-random",
    ),
]


def parser_accepts(spec: dict[str, Any]) -> bool:
    try:
        parse_spec(spec)
    except InvalidSpec:
        return False
    return True


@pytest.mark.parametrize(("spec", "verdict"), EXAMPLES)
def test_schema_and_parser_agree(spec_schema: dict[str, Any], spec: dict[str, Any], verdict: str) -> None:
    stored = admit(spec_schema, spec)
    schema_problems = list(violations(spec_schema, stored))
    assert (not schema_problems) == (verdict != "invalid"), schema_problems
    # The parser never trusts the schema: it refuses what the schema refuses.
    assert parser_accepts(stored) == (verdict == "valid")
