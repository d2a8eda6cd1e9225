"""deploy/policy-authors.yaml and deploy/rbac-user-roles.yaml, checked without a cluster.

Structure: what the policy matches, how it is bound, that every refusal names a field of the
CRD and the permission missing, that messages never call the authorizer (the API server
gives them none), that no expression can make more authorization checks than the API server
allows one expression, and how the user roles aggregate. Behaviour: the policy's CEL is
evaluated with cel-python and a fake authorizer that answers from a set of rights the way RBAC
does (in the namespace, for any name or for listed names). cel-python does not short-circuit
`||` and `&&` as the API server does, so the check budget is pinned by reading the expressions,
and by tests/integration/test_author_policy.py, which runs the real thing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy import celtypes

REPO = Path(__file__).resolve().parents[2]
Obj = dict[str, Any]
Right = tuple[str, str, str, str]  # verb, API group, resource[/subresource], name ("" for any)
NAMESPACE = "shop"
CHECKS_PER_EXPRESSION = 2  # each check costs 350000 of the 1000000 an expression may spend
ENV = celpy.Environment()


def documents(path: str) -> dict[str, Obj]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((REPO / path).read_text())}


POLICY = documents("deploy/policy-authors.yaml")["ValidatingAdmissionPolicy"]
BINDING = documents("deploy/policy-authors.yaml")["ValidatingAdmissionPolicyBinding"]
SPEC = POLICY["spec"]
ROLES = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all((REPO / "deploy/rbac-user-roles.yaml").read_text())}
CRD_SPEC = yaml.safe_load((REPO / "crds/secretrotation.yaml").read_text())["spec"]["versions"][0]["schema"][
    "openAPIV3Schema"
]["properties"]["spec"]


def uses_authorizer() -> set[str]:
    """Variables whose value comes from the authorizer, directly or through another variable."""
    found: set[str] = set()
    for variable in SPEC["variables"]:
        expression = variable["expression"]
        if "authorizer" in expression or any(f"variables.{name}" in expression for name in found):
            found.add(variable["name"])
    return found


class FakeAuthorizer:
    """``authorizer.group(g).resource(r)...check(verb).allowed()``, answered from ``rights``."""

    def __init__(self, rights: Iterable[Right]) -> None:
        self.rights = set(rights)
        self.functions = {key: self._step(key) for key in ("group", "resource", "subresource", "namespace", "name")}
        self.functions.update(check=self._check, allowed=lambda decision: decision[celtypes.StringType("allowed")])

    @staticmethod
    def _step(key: str) -> Any:
        def step(builder: celtypes.MapType, value: celtypes.StringType) -> celtypes.MapType:
            return celtypes.MapType({**builder, celtypes.StringType(key): value})

        return step

    def _check(self, builder: celtypes.MapType, verb: celtypes.StringType) -> celtypes.MapType:
        asked = {str(k): str(v) for k, v in builder.items()}
        assert asked.get("namespace") == NAMESPACE, f"a check outside the rotation's namespace: {asked}"
        resource = asked["resource"] + (f"/{asked['subresource']}" if asked.get("subresource") else "")
        name = asked.get("name", "")
        allowed = (str(verb), asked["group"], resource, "") in self.rights or (
            bool(name) and (str(verb), asked["group"], resource, name) in self.rights
        )
        return celtypes.MapType({celtypes.StringType("allowed"): celtypes.BoolType(allowed)})


def join(items: celtypes.ListType, separator: celtypes.StringType) -> celtypes.StringType:
    """Kubernetes' CEL string library: ``list.join(separator)``."""
    return celtypes.StringType(str(separator).join(str(item) for item in items))


def run(expression: str, activation: Mapping[str, Any], authorizer: FakeAuthorizer | None = None) -> Any:
    functions = {"join": join, **(authorizer.functions if authorizer else {})}
    return ENV.program(ENV.compile(expression), functions=functions).evaluate(dict(activation))


def refusals(
    spec: Obj, rights: Iterable[Right], *, old: Obj | None = None, annotations: Obj | None = None
) -> list[str]:
    """The messages of the validations that refuse ``spec`` from an author holding ``rights``."""
    meta: Obj = {"name": "r", "namespace": NAMESPACE, **({"annotations": annotations} if annotations else {})}
    obj = {"metadata": meta, "spec": spec}
    operation = "UPDATE" if old is not None else "CREATE"
    base = {
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old) if old is not None else celtypes.MapType({}),
        "request": celpy.json_to_cel({"operation": operation, "namespace": NAMESPACE}),
    }
    if not all(run(c["expression"], base) for c in SPEC.get("matchConditions", [])):
        return []
    authorizer = FakeAuthorizer(rights)
    variables: dict[celtypes.StringType, Any] = {}
    for variable in SPEC["variables"]:
        activation = {**base, "authorizer": celtypes.MapType({}), "variables": celtypes.MapType(variables)}
        variables[celtypes.StringType(variable["name"])] = run(variable["expression"], activation, authorizer)
    checked = {**base, "authorizer": celtypes.MapType({}), "variables": celtypes.MapType(variables)}
    # A message sees no authorizer, and so no variable made from one.
    pure = {k: v for k, v in variables.items() if str(k) not in uses_authorizer()}
    explained = {**base, "variables": celtypes.MapType(pure)}
    return [
        str(run(v["messageExpression"], explained))
        for v in SPEC["validations"]
        if not run(v["expression"], checked, authorizer)
    ]


def test_the_policy_matches_creates_and_updates_of_secret_rotations_but_not_their_status() -> None:
    assert POLICY["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert SPEC["failurePolicy"] == "Fail"
    [rules] = SPEC["matchConstraints"]["resourceRules"]
    assert rules["apiGroups"] == ["rotation.sre.dev"]
    assert rules["resources"] == ["secretrotations"], "no subresource: the operator's status writes are not checked"
    assert sorted(rules["operations"]) == ["CREATE", "UPDATE"]


def test_the_binding_denies_through_the_policy_in_every_namespace() -> None:
    assert BINDING["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert BINDING["spec"]["policyName"] == POLICY["metadata"]["name"]
    assert BINDING["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in BINDING["spec"]


def field_exists(path: str) -> bool:
    schema = {"properties": {"spec": CRD_SPEC}}
    for part in path.replace("[]", "").split("."):
        schema = schema.get("items", schema)
        if part not in schema.get("properties", {}):
            return False
        schema = schema["properties"][part]
    return True


@pytest.mark.parametrize("validation", SPEC["validations"], ids=lambda v: v["messageExpression"][:60])
def test_every_refusal_is_forbidden_and_names_a_field_of_the_crd_and_the_permission(validation: Obj) -> None:
    assert validation["reason"] == "Forbidden"
    literals = re.findall(r"'(spec[\w.\[\]]*): you may not (\w+) ", validation["messageExpression"])
    assert literals, "every message begins with the field and the verb refused"
    for field, _verb in literals:
        assert field_exists(field), field


def test_messages_use_only_what_the_object_says() -> None:
    from_authorizer = uses_authorizer()
    assert {"mayCreateSecrets", "mayPatchDeployments"} <= from_authorizer
    for validation in SPEC["validations"]:
        message = validation["messageExpression"]
        assert "authorizer" not in message
        assert not [name for name in from_authorizer if f"variables.{name}" in message], message


LOOP_OVER_CHECKS = r"variables\.(\w+)\.(?:all|exists|exists_one|map|filter)\([^,]+, authorizer"


def test_no_expression_can_make_more_authorization_checks_than_the_api_server_allows() -> None:
    for item in SPEC["variables"] + SPEC["validations"]:
        expression = " ".join(item["expression"].split())
        assert expression.count(".check(") <= CHECKS_PER_EXPRESSION, expression
        for looped in re.findall(LOOP_OVER_CHECKS, expression):
            assert f"size(variables.{looped}) <= {CHECKS_PER_EXPRESSION} &&" in expression, expression


def test_the_policy_asks_for_exactly_the_permissions_a_rotation_uses() -> None:
    asked = set()
    for expression in [v["expression"] for v in SPEC["variables"] + SPEC["validations"]]:
        for resource, subresource, named, verb in re.findall(
            r"resource\('(\w+)'\)(?:\.subresource\('(\w+)'\))?\s*\.namespace\([\w.]+\)\s*(\.name\()?.*?"
            r"check\('(\w+)'\)",
            expression.replace("\n", " "),
        ):
            asked.add((verb, resource + (f"/{subresource}" if subresource else ""), "by name" if named else "any"))
    assert asked == {
        ("update", "secrets", "by name"), ("create", "secrets", "any"), ("get", "secrets", "by name"),
        ("create", "serviceaccounts/token", "by name"), ("update", "serviceaccounts", "by name"),
        ("create", "serviceaccounts", "any"),
        *(("patch", kind, scope) for kind in ("deployments", "statefulsets", "daemonsets")
          for scope in ("any", "by name")),
    }  # fmt: skip


def right(verb: str, resource: str, name: str = "", group: str = "") -> Right:
    return (verb, group, resource, name)


def patch(resource: str, name: str = "") -> Right:
    return right("patch", resource, name, "apps")


EDITOR = {
    right("update", "secrets"), right("create", "secrets"), right("get", "secrets"),
    right("create", "serviceaccounts/token"), right("update", "serviceaccounts"), right("create", "serviceaccounts"),
    patch("deployments"), patch("statefulsets"), patch("daemonsets"),
}  # fmt: skip
SECRET = {"secretName": "db", "generate": [{"key": "password"}]}
ACCOUNT = {"serviceAccount": {"name": "deployer", "tokenSecret": False}}


@pytest.mark.parametrize(
    "spec",
    [
        SECRET,
        {"secretName": "db", "from": {"secretName": "upstream"}, "targets": [{"kind": "Deployment", "name": "api"}]},
        {"serviceAccount": {"name": "deployer", "tokenSecret": True}},
        {**SECRET, "targets": [{"kind": "DaemonSet", "selector": {"matchLabels": {"app": "agent"}}}]},
    ],
    ids=["secret-discovering", "from-named", "account-token-secret", "selector"],
)
def test_an_editor_is_refused_nothing(spec: Obj) -> None:
    assert refusals(spec, EDITOR) == []


NAMED = [{"kind": "StatefulSet", "name": "ledger"}, {"kind": "StatefulSet", "name": "vault"}]


@pytest.mark.parametrize(
    ("spec", "rights", "first"),
    [
        (SECRET, EDITOR - {right("update", "secrets")} | {right("update", "secrets", "other")},
         "spec.secretName: you may not update Secret db in namespace shop;"),
        (SECRET, EDITOR - {right("create", "secrets")},
         "spec.secretName: you may not create Secrets in namespace shop"),
        ({"secretName": "db", "from": {"secretName": "upstream"}}, EDITOR - {right("get", "secrets")},
         "spec.from.secretName: you may not get Secret upstream in namespace shop"),
        (ACCOUNT, EDITOR - {right("create", "serviceaccounts/token")},
         "spec.serviceAccount.name: you may not create serviceaccounts/token for ServiceAccount deployer"),
        (ACCOUNT, EDITOR - {right("update", "serviceaccounts")},
         "spec.serviceAccount.name: you may not update ServiceAccount deployer in namespace shop"),
        (ACCOUNT, EDITOR - {right("create", "serviceaccounts")},
         "spec.serviceAccount.name: you may not create ServiceAccounts in namespace shop"),
        ({"serviceAccount": {"name": "deployer", "tokenSecret": True}}, EDITOR - {right("create", "secrets")},
         "spec.serviceAccount.tokenSecret: you may not create Secrets in namespace shop (tokenSecret: true creates "
         "a long-lived token Secret deployer-v<N>-token)"),
        ({**SECRET, "targets": NAMED}, EDITOR - {patch("statefulsets")} | {patch("statefulsets", "ledger")},
         "spec.targets[].name: you may not patch both StatefulSet ledger and StatefulSet vault in namespace shop"),
        ({**SECRET, "targets": NAMED[:1]}, EDITOR - {patch("statefulsets")},
         "spec.targets[].name: you may not patch StatefulSet ledger in namespace shop"),
        ({**SECRET, "targets": [{"kind": "DaemonSet", "selector": {"matchLabels": {"a": "b"}}}]},
         EDITOR - {patch("daemonsets")} | {patch("daemonsets", "agent")},
         "spec.targets[].selector: you may not patch DaemonSets in namespace shop (a selector may match any"),
        (SECRET, EDITOR - {patch("deployments")},
         "spec.targets: you may not patch Deployments in namespace shop (without spec.targets"),
        ({**SECRET, "targets": [{"kind": "Deployment", "name": n} for n in "abc"]},
         EDITOR - {patch("deployments")} | {patch("deployments", n) for n in "abc"},
         "spec.targets[].name: you may not patch Deployments in namespace shop, and named Deployments are checked "
         "one by one only up to 2 (this rotation names 3)"),
    ],
    ids=["secret-update", "secret-create", "from-get", "account-token", "account-update", "account-create",
         "token-secret", "two-named", "one-named", "selector", "discovery", "three-named"],
)  # fmt: skip
def test_an_author_missing_one_right_is_told_which(spec: Obj, rights: set[Right], first: str) -> None:
    refused = refusals(spec, rights)

    assert len(refused) == 1, refused
    assert refused[0].startswith(first), refused[0]
    assert refused[0].endswith("; a SecretRotation may only rotate what its author could rotate by hand")


def test_named_targets_are_checked_by_name_two_per_kind() -> None:
    by_name = EDITOR - {patch("statefulsets"), patch("daemonsets")}
    by_name |= {patch("statefulsets", "ledger"), patch("statefulsets", "vault"), patch("daemonsets", "agent")}
    spec = {**SECRET, "targets": [*NAMED, {"kind": "DaemonSet", "name": "agent"}]}

    assert refusals(spec, by_name) == []


def test_an_update_is_checked_when_it_changes_the_spec_or_an_annotation_and_not_for_labels_alone() -> None:
    nobody: set[Right] = set()
    # Stored with a label and a finalizer the update drops: neither is something the operator reads.
    stored = {"metadata": {"name": "r", "namespace": NAMESPACE, "labels": {"team": "shop"}, "finalizers": ["x"]},
              "spec": SECRET}  # fmt: skip

    assert refusals(SECRET, nobody, old=stored) == [], "labels, finalizers, owner references: the operator reads none"
    requested = {"rotation.sre.dev/requested-at": "now"}
    assert refusals(SECRET, nobody, old=stored, annotations=requested), "requesting a rotation is checked"
    assert refusals({**SECRET, "retain": 2}, nobody, old=stored), "a spec change is checked"


def test_editors_author_secret_rotations_and_viewers_read_them() -> None:
    edit, view = ROLES["secretrotation-edit"], ROLES["secretrotation-view"]
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k: v for k, v in edit["metadata"]["labels"].items() if k.startswith(aggregate)} == {
        f"{aggregate}edit": "true",
        f"{aggregate}admin": "true",
    }
    labels = view["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k.startswith(aggregate)} == {f"{aggregate}view": "true"}
    for role, verbs in ((edit, {"create", "update", "patch", "delete", "deletecollection", "get", "list", "watch"}),
                        (view, {"get", "list", "watch"})):  # fmt: skip
        [only] = role["rules"]
        assert only["apiGroups"] == ["rotation.sre.dev"]
        assert only["resources"] == ["secretrotations"], "status is the operator's alone"
        assert set(only["verbs"]) == verbs
