"""crds/secretrotation.yaml is structural, its CEL rules name the field they refuse
and stay within the cost budget, and it agrees with the operator's parser
(secretrotation.core.spec.parse_spec).

The agreement check runs each example through what the API server does to a
new object (prune unknown fields, fill defaults, validate) with a small
evaluator of the schema keywords the CRD uses and cel-python for its
x-kubernetes-validations rules, then through parse_spec. The real API server
is exercised by the integration tests.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy import celtypes

from secretrotation.core import names
from secretrotation.core import spec as model
from secretrotation.core.spec import InvalidSpec, parse_spec

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "secretrotation.yaml"
# What the evaluator below understands; a keyword outside it would be checked by nothing here.
KEYWORDS = frozenset(
    {
        "type", "description", "format", "properties", "additionalProperties", "items", "required",
        "enum", "pattern", "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems",
        "minProperties", "maxProperties", "default", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations",
    }
)  # fmt: skip


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
    yield from rule_violations(schema, value, path)


CEL = celpy.Environment()
# Kubernetes' CEL has the strings extension; the rules use one function of it.
KUBERNETES_FUNCTIONS = {"substring": lambda text, start: celtypes.StringType(text[start:])}


@functools.cache
def cel_program(expression: str) -> celpy.Runner:
    return CEL.program(CEL.compile(expression), functions=KUBERNETES_FUNCTIONS)


def cel_evaluate(expression: str, value: Any) -> Any:
    return cel_program(expression).evaluate({"self": celpy.json_to_cel(value)})


def rule_violations(schema: dict[str, Any], value: Any, path: str) -> Iterator[str]:
    """The x-kubernetes-validations rules ``value`` breaks, reported as the API server does."""
    for rule in schema.get("x-kubernetes-validations", ()):
        try:
            holds = bool(cel_evaluate(rule["rule"], value))
        except celpy.CELEvalError:
            holds = False  # the API server refuses an object a rule cannot evaluate (a duration overflow)
        if not holds:
            message = rule.get("message") or cel_evaluate(rule["messageExpression"], value)
            yield f"{path}{rule.get('fieldPath', '')}: {message}"


def schema_nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """The structural skeleton: the node, its properties, items and additionalProperties, recursively."""
    yield path or "<root>", schema
    for key, sub in schema.get("properties", {}).items():
        yield from schema_nodes(sub, f"{path}.{key}")
    if "items" in schema:
        yield from schema_nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from schema_nodes(schema["additionalProperties"], f"{path}{{}}")


# --- Structural -----------------------------------------------------------------


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


def test_the_schema_uses_only_keywords_the_evaluator_knows(root: dict[str, Any]) -> None:
    unknown = {path: set(node) - KEYWORDS for path, node in schema_nodes(root) if set(node) - KEYWORDS}
    assert unknown == {}


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
        # As the API server checks them: as written, without the defaults inside them.
        assert list(violations(node, node["default"], path)) == []


def test_no_field_can_name_a_namespace(root: dict[str, Any]) -> None:
    spec_fields = {path for path, _ in schema_nodes(root["properties"]["spec"])}
    assert not [path for path in spec_fields if "namespace" in path.lower()]


# --- CEL rules -------------------------------------------------------------------


def rules(root: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(path of the node, the node, one of its rules) for every rule, the path as messages write it."""
    for path, node in schema_nodes(root):
        for rule in node.get("x-kubernetes-validations", ()):
            yield path.lstrip("."), node, rule


def test_every_rule_names_the_field_it_refuses_by_its_full_path(root: dict[str, Any]) -> None:
    found = list(rules(root))
    assert found
    for path, _, rule in found:
        assert ("message" in rule) != ("messageExpression" in rule), rule
        field = path + rule.get("fieldPath", "")
        assert field.startswith("spec") and field in rule.get("message", rule.get("messageExpression")), rule


def test_every_field_path_points_at_a_declared_field(root: dict[str, Any]) -> None:
    for path, node, rule in rules(root):
        target = node
        for key in rule.get("fieldPath", "").split(".")[1:]:
            assert key in target.get("properties", {}), (path, rule)
            target = target["properties"][key]


def test_every_string_list_and_map_a_rule_can_read_is_bounded(root: dict[str, Any]) -> None:
    # The API server refuses a CRD whose rules could cost too much; its estimate takes each
    # string at maxLength (or its longest enum value), each list at maxItems, each map at maxProperties.
    for path, node, _ in rules(root):
        for inner, sub in schema_nodes(node, path):
            bounded = {
                "string": "maxLength" in sub or "enum" in sub,
                "array": "maxItems" in sub,
                "object": "additionalProperties" not in sub or "maxProperties" in sub,
            }.get(sub["type"], True)
            assert bounded, inner


def test_no_rule_asks_has_of_a_field_with_a_default(root: dict[str, Any]) -> None:
    # A default is filled in before the rules run: has() of it would always hold (this is why
    # spec.type has no default: a ServiceAccount rotation must not have one).
    for path, node, rule in rules(root):
        for key in re.findall(r"has\(self\.(\w+)\)", rule["rule"]):
            assert "default" not in node["properties"][key], f"{path}.{key}"


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
        "Stalled": ("string", '.status.conditions[?(@.type=="Stalled")].reason', 1),
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
    not_a_version = f"!self.matches('{model.VERSION_SUFFIX_PATTERN}')"
    assert {
        rule["rule"]
        for field in (fields["secretName"], fields["serviceAccount"]["properties"]["name"])
        for rule in field["x-kubernetes-validations"]
    } == {not_a_version}
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


# valid: both accept. invalid: both refuse. parser-only: what no rule can see (see parsing.py).
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
        "invalid",
        id="duplicate-target",
    ),
    pytest.param(sel(matchLabels={}), "invalid", id="selector-with-empty-labels"),
    pytest.param(
        sel(matchExpressions=[{"key": "example.com/" + "n" * 64, "operator": "Exists"}]),
        "invalid",
        id="expression-key-name-64",
    ),
    pytest.param(
        sel(matchExpressions=[{"key": "n" * 254 + "/n", "operator": "Exists"}]), "invalid", id="expression-prefix-254"
    ),
    pytest.param({"secretName": DNS, "generate": GEN, "rotateEvery": "1m"}, "valid", id="rotate-1m"),
    pytest.param({"secretName": DNS, "generate": GEN, "rotateEvery": "8760h"}, "valid", id="rotate-8760h"),
    pytest.param({"secretName": DNS, "generate": GEN, "rotateEvery": "1h30m"}, "valid", id="rotate-go-duration"),
    pytest.param({"secretName": DNS, "generate": GEN, "rotateEvery": "59s"}, "invalid", id="rotate-59s"),
    pytest.param({"secretName": DNS, "generate": GEN, "rotateEvery": "8761h"}, "invalid", id="rotate-8761h"),
    pytest.param({"secretName": DNS, "generate": GEN, "rotateEvery": "9" * 20 + "h"}, "invalid", id="rotate-overflow"),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "verify": {"timeout": "24h", "stableFor": "1h"}},
        "valid",
        id="verify-upper-bounds",
    ),
    pytest.param({"secretName": DNS, "generate": GEN, "verify": {"timeout": "9s"}}, "invalid", id="timeout-9s"),
    pytest.param({"secretName": DNS, "generate": GEN, "verify": {"timeout": "25h"}}, "invalid", id="timeout-25h"),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "verify": {"timeout": "24h", "stableFor": "61m"}},
        "invalid",
        id="stable-61m",
    ),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "verify": {"timeout": "1m", "stableFor": "1m"}},
        "invalid",
        id="stable-not-below-timeout",
    ),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "verify": {"timeout": "20s"}}, "invalid", id="default-stable-not-below"
    ),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "verify": {"timeout": "10m", "notReadyAfter": "2m"}},
        "valid",
        id="not-ready-after-below-timeout",
    ),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "verify": {"timeout": "1m"}}, "valid", id="not-ready-after-unset"
    ),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "verify": {"timeout": "2m", "notReadyAfter": "2m"}},
        "invalid",
        id="not-ready-after-not-below-timeout",
    ),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "verify": {"notReadyAfter": "9s"}}, "invalid", id="not-ready-after-9s"
    ),
    pytest.param(
        {"secretName": DNS, "generate": GEN, "verify": {"notReadyAfter": "25h"}}, "invalid", id="not-ready-after-25h"
    ),
    pytest.param({"secretName": "db-v2", "generate": GEN}, "invalid", id="secret-looks-like-a-version"),
    pytest.param({"secretName": "db-v2x", "generate": GEN}, "valid", id="secret-v-not-a-suffix"),
    pytest.param({"serviceAccount": {"name": "deployer-v1"}}, "invalid", id="account-looks-like-a-version"),
    pytest.param({"serviceAccount": {"name": "d"}, "secretName": DNS}, "invalid", id="account-and-secret"),
    pytest.param({"from": {"secretName": "n"}}, "invalid", id="from-without-secret-name"),
    pytest.param({"secretName": DNS, "from": {"secretName": DNS}}, "invalid", id="from-itself"),
    pytest.param({"secretName": DNS, "from": {"secretName": f"{DNS}-v2"}}, "invalid", id="from-own-version"),
    pytest.param({"secretName": "db", "from": {"secretName": "db-v01"}}, "valid", id="from-v01-is-no-version"),
    pytest.param({"secretName": "db", "from": {"secretName": "db-v1x"}}, "valid", id="from-v1x-is-no-version"),
    pytest.param({"secretName": "db", "from": {"secretName": "other-v3"}}, "valid", id="from-another-rotation"),
    pytest.param(
        {"secretName": DNS, "type": "kubernetes.io/tls", "generate": [{"key": "tls.crt"}, {"key": "tls.key"}]},
        "valid",
        id="tls",
    ),
    pytest.param(
        {"secretName": DNS, "type": "kubernetes.io/tls", "generate": [{"key": "tls.crt"}]},
        "invalid",
        id="tls-without-key",
    ),
    pytest.param(
        {"secretName": DNS, "type": "kubernetes.io/ssh-auth", "generate": [{"key": "ssh-privatekey"}]},
        "valid",
        id="ssh",
    ),
    pytest.param(
        {"secretName": DNS, "type": "kubernetes.io/ssh-auth", "generate": [{"key": "id"}]},
        "invalid",
        id="ssh-without-private-key",
    ),
    pytest.param(
        {"secretName": DNS, "type": "kubernetes.io/basic-auth", "generate": [{"key": "token"}]},
        "invalid",
        id="basic-auth-without-credentials",
    ),
    pytest.param(
        {"secretName": DNS, "type": "kubernetes.io/dockerconfigjson", "generate": [{"key": ".dockerconfigjson"}]},
        "invalid",
        id="docker-config-random",
    ),
    pytest.param(
        {"secretName": DNS, "type": "kubernetes.io/tls", "from": {"secretName": "issued"}},
        "valid",
        id="type-keys-come-with-from",
    ),
    pytest.param(
        {
            "secretName": DNS,
            "type": "kubernetes.io/dockerconfigjson",
            "generate": [{"key": ".dockerconfigjson", "value": "[1]"}],
        },
        "parser-only",
        id="docker-config-not-json",
    ),
    pytest.param(sel(matchLabels={"example.com/" + "n" * 64: "v"}), "parser-only", id="label-name-64"),
    pytest.param(
        {
            "secretName": DNS,
            "generate": GEN,
            "targets": [
                {"kind": "Deployment", "selector": {"matchLabels": {"app": "a"}}},
                {"kind": "Deployment", "selector": {"matchLabels": {"app": "a"}, "matchExpressions": []}},
            ],
        },
        "parser-only",
        id="duplicate-selector-in-another-form",
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
