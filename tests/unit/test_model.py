"""Behaviour of secretrotation.core.spec (spec parsing, snapshots, value generation)
and secretrotation.core.names (how versions are named)."""

from __future__ import annotations

import json
import string
from datetime import timedelta
from typing import Any

import pytest

from secretrotation.core.names import (
    REVISION_LABEL,
    ROTATION_LABEL,
    parse_revision,
    version_labels,
    version_name,
)
from secretrotation.core.spec import (
    Alphabet,
    GenerateRule,
    InvalidSpec,
    RotationSpec,
    SecretType,
    ServiceAccountSpec,
    TargetSelector,
    VerifySpec,
    WorkloadKind,
    format_duration,
    generate_value,
    parse_duration,
    parse_spec,
    selector_matches,
    spec_from_snapshot,
    spec_to_snapshot,
)

CANARY = "canary-Zx81-do-not-leak"
GENERATE = [{"key": "password"}, {"key": "username", "value": "shop"}]


def secret_spec(**fields: Any) -> dict[str, Any]:
    """A valid secret-mode spec, with ``fields`` added or replaced (``from_`` for ``from``)."""
    spec: dict[str, Any] = {"secretName": "db-credentials", "generate": GENERATE}
    if "from_" in fields:
        fields["from"] = fields.pop("from_")
        del spec["generate"]
    spec.update(fields)
    return spec


def account_spec(**fields: Any) -> dict[str, Any]:
    """A valid ServiceAccount-mode spec, with ``fields`` added or replaced."""
    return {"serviceAccount": {"name": "deployer"}, **fields}


def target_spec(*targets: dict[str, Any]) -> dict[str, Any]:
    return secret_spec(targets=list(targets))


def selector_target(**selector: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "selector": selector}


def expression(key: str, operator: str, values: list[str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": key, "operator": operator}
    if values is not None:
        entry["values"] = values
    return entry


# --- Refused specs: (spec, field path, fragment of the problem) ----------------

INVALID_SPECS = [
    # Which credential, and how its versions are filled.
    pytest.param({"generate": GENERATE}, "spec", "exactly one of secretName", id="neither-secret-nor-account"),
    pytest.param(
        secret_spec(serviceAccount={"name": "deployer"}), "spec", "exactly one of secretName", id="secret-and-account"
    ),
    pytest.param({"secretName": "db"}, "spec", "exactly one of generate or from", id="secret-without-source"),
    pytest.param(
        secret_spec(**{"from": {"secretName": "next"}}),
        "spec",
        "exactly one of generate or from",
        id="generate-and-from",
    ),
    pytest.param(
        account_spec(generate=GENERATE), "spec.generate", "not allowed with serviceAccount", id="account-generate"
    ),
    pytest.param(
        account_spec(**{"from": {"secretName": "next"}}),
        "spec.from",
        "not allowed with serviceAccount",
        id="account-from",
    ),
    pytest.param(account_spec(type="Opaque"), "spec.type", "not allowed with serviceAccount", id="account-type"),
    # No field may reach another namespace, and unknown fields are never read.
    pytest.param(secret_spec(namespace="other"), "spec", "own namespace", id="namespace-field"),
    pytest.param(
        secret_spec(from_={"secretName": "next", "namespace": "other"}),
        "spec.from",
        "own namespace",
        id="from-namespace",
    ),
    pytest.param(
        target_spec({"kind": "Deployment", "name": "api", "namespace": "other"}),
        "spec.targets[0]",
        "own namespace",
        id="target-namespace",
    ),
    pytest.param(secret_spec(secretname="typo"), "spec", "unknown field 'secretname'", id="unknown-field"),
    pytest.param([], "spec", "must be an object", id="spec-not-an-object"),
    # Names.
    pytest.param(
        secret_spec(secretName="DB_Credentials"), "spec.secretName", "not a valid name", id="secret-uppercase"
    ),
    pytest.param(secret_spec(secretName="db..creds"), "spec.secretName", "not a valid name", id="secret-double-dot"),
    pytest.param(secret_spec(secretName="-db"), "spec.secretName", "not a valid name", id="secret-leading-dash"),
    pytest.param(secret_spec(secretName=""), "spec.secretName", "not a valid name", id="secret-empty"),
    pytest.param(secret_spec(secretName="a" * 242), "spec.secretName", "at most 241", id="secret-too-long"),
    pytest.param(secret_spec(secretName=42), "spec.secretName", "must be a string", id="secret-not-a-string"),
    pytest.param(
        secret_spec(secretName="db-credentials-v2"),
        "spec.secretName",
        "'db-credentials-v2' ends in -v<digits>",
        id="secret-looks-like-a-version",
    ),
    pytest.param(secret_spec(from_={}), "spec.from.secretName", "is required", id="from-without-name"),
    pytest.param(secret_spec(from_="next"), "spec.from", "must be an object", id="from-not-an-object"),
    pytest.param(secret_spec(from_={"secretName": "Next"}), "spec.from.secretName", "not a valid name", id="from-bad"),
    pytest.param(
        secret_spec(from_={"secretName": "db-credentials"}),
        "spec.from.secretName",
        "belongs to this rotation",
        id="from-itself",
    ),
    pytest.param(
        secret_spec(from_={"secretName": "db-credentials-v3"}),
        "spec.from.secretName",
        "belongs to this rotation",
        id="from-own-version",
    ),
    pytest.param({"serviceAccount": {}}, "spec.serviceAccount.name", "is required", id="account-without-name"),
    pytest.param(
        {"serviceAccount": {"name": "d" * 242}}, "spec.serviceAccount.name", "at most 241", id="account-name-too-long"
    ),
    pytest.param(
        {"serviceAccount": {"name": "deployer-v1"}},
        "spec.serviceAccount.name",
        "'deployer-v1' ends in -v<digits>",
        id="account-looks-like-a-version",
    ),
    pytest.param(
        {"serviceAccount": {"name": "deployer", "tokenSecret": "yes"}},
        "spec.serviceAccount.tokenSecret",
        "true or false",
        id="account-token-not-bool",
    ),
    # Secret types.
    pytest.param(
        secret_spec(type="kubernetes.io/service-account-token"), "spec.type", "mints credentials", id="type-sa-token"
    ),
    pytest.param(
        secret_spec(type="bootstrap.kubernetes.io/token"), "spec.type", "mints credentials", id="type-bootstrap"
    ),
    pytest.param(secret_spec(type="kubernetes.io/dockercfg"), "spec.type", "must be one of", id="type-unsupported"),
    pytest.param(secret_spec(type=""), "spec.type", "must be one of", id="type-empty"),
    pytest.param(
        secret_spec(type="kubernetes.io/basic-auth", generate=[{"key": "token"}]),
        "spec.generate",
        "'username' or 'password'",
        id="basic-auth-without-credentials",
    ),
    pytest.param(
        secret_spec(type="kubernetes.io/tls", generate=[{"key": "tls.crt"}]),
        "spec.generate",
        "'tls.key'",
        id="tls-without-key",
    ),
    pytest.param(
        secret_spec(type="kubernetes.io/ssh-auth", generate=[{"key": "id"}]),
        "spec.generate",
        "'ssh-privatekey'",
        id="ssh-without-private-key",
    ),
    pytest.param(
        secret_spec(type="kubernetes.io/dockerconfigjson", generate=[{"key": ".dockerconfigjson"}]),
        "spec.generate[0]",
        "must be a constant",
        id="docker-config-random",
    ),
    pytest.param(
        secret_spec(type="kubernetes.io/dockerconfigjson", generate=[{"key": ".dockerconfigjson", "value": "[1]"}]),
        "spec.generate[0].value",
        "JSON object",
        id="docker-config-not-an-object",
    ),
    # Generate entries.
    pytest.param(secret_spec(generate=[]), "spec.generate", "must not be empty", id="generate-empty"),
    pytest.param(
        secret_spec(generate=[{"key": f"k{i}"} for i in range(65)]), "spec.generate", "at most 64", id="generate-65"
    ),
    pytest.param(secret_spec(generate={"key": "password"}), "spec.generate", "must be a list", id="generate-not-list"),
    pytest.param(secret_spec(generate=["password"]), "spec.generate[0]", "must be an object", id="entry-not-object"),
    pytest.param(secret_spec(generate=[{"length": 32}]), "spec.generate[0].key", "is required", id="key-missing"),
    pytest.param(
        secret_spec(generate=[{"key": "a/b"}]), "spec.generate[0].key", "not a valid data key", id="key-slash"
    ),
    pytest.param(secret_spec(generate=[{"key": "."}]), "spec.generate[0].key", "not a valid data key", id="key-dot"),
    pytest.param(
        secret_spec(generate=[{"key": ".."}]), "spec.generate[0].key", "not a valid data key", id="key-dotdot"
    ),
    pytest.param(
        secret_spec(generate=[{"key": "..data"}]),
        "spec.generate[0].key",
        "not a valid data key",
        id="key-dotdot-prefix",
    ),
    pytest.param(secret_spec(generate=[{"key": "k" * 254}]), "spec.generate[0].key", "at most 253", id="key-too-long"),
    pytest.param(
        secret_spec(generate=[{"key": "password"}, {"key": "password"}]),
        "spec.generate[1].key",
        "duplicate key 'password'",
        id="duplicate-key",
    ),
    pytest.param(
        secret_spec(generate=[{"key": "user", "value": "shop", "length": 8}]),
        "spec.generate[0]",
        "not both",
        id="value-and-length",
    ),
    pytest.param(
        secret_spec(generate=[{"key": "user", "value": "shop", "alphabet": "hex"}]),
        "spec.generate[0]",
        "not both",
        id="value-and-alphabet",
    ),
    pytest.param(
        secret_spec(generate=[{"key": "k", "length": 7}]), "spec.generate[0].length", "between 8 and 1024", id="short"
    ),
    pytest.param(
        secret_spec(generate=[{"key": "k", "length": 1025}]), "spec.generate[0].length", "between 8 and 1024", id="long"
    ),
    pytest.param(
        secret_spec(generate=[{"key": "k", "length": "32"}]), "spec.generate[0].length", "integer", id="length-string"
    ),
    pytest.param(
        secret_spec(generate=[{"key": "k", "length": True}]), "spec.generate[0].length", "integer", id="length-bool"
    ),
    pytest.param(
        secret_spec(generate=[{"key": "k", "alphabet": "base32"}]),
        "spec.generate[0].alphabet",
        "must be one of alphanumeric, hex, base64url, ascii",
        id="alphabet-unknown",
    ),
    pytest.param(
        secret_spec(generate=[{"key": "k", "value": "v" * 4097}]),
        "spec.generate[0].value",
        "at most 4096",
        id="value-too-long",
    ),
    pytest.param(
        secret_spec(generate=[{"key": "k", "value": 1234}]),
        "spec.generate[0].value",
        "must be a string",
        id="value-int",
    ),
    # Targets.
    pytest.param(secret_spec(targets=[]), "spec.targets", "omit targets to discover", id="targets-empty"),
    pytest.param(
        secret_spec(targets=[{"kind": "Deployment", "name": f"w{i}"} for i in range(65)]),
        "spec.targets",
        "at most 64",
        id="targets-65",
    ),
    pytest.param(target_spec({"name": "api"}), "spec.targets[0].kind", "is required", id="target-without-kind"),
    pytest.param(target_spec({"kind": "Job", "name": "api"}), "spec.targets[0].kind", "must be one of", id="kind-job"),
    pytest.param(
        target_spec({"kind": "Deployment"}), "spec.targets[0]", "exactly one of name or selector", id="no-ref"
    ),
    pytest.param(
        target_spec({"kind": "Deployment", "name": "api", "selector": {"matchLabels": {"app": "api"}}}),
        "spec.targets[0]",
        "exactly one of name or selector",
        id="name-and-selector",
    ),
    pytest.param(
        target_spec({"kind": "Deployment", "name": "API"}), "spec.targets[0].name", "not a valid name", id="target-name"
    ),
    pytest.param(
        target_spec({"kind": "Deployment", "name": "api"}, {"kind": "Deployment", "name": "api"}),
        "spec.targets[1]",
        "duplicate target Deployment api",
        id="duplicate-target",
    ),
    pytest.param(
        target_spec(selector_target(matchLabels={"app": "api"}), selector_target(matchLabels={"app": "api"})),
        "spec.targets[1]",
        "duplicate target Deployment with the same selector",
        id="duplicate-selector",
    ),
    pytest.param(
        target_spec(selector_target()),
        "spec.targets[0].selector",
        "selector must not be empty; name the workloads or use labels",
        id="selector-empty",
    ),
    pytest.param(
        target_spec(selector_target(matchLabels={}, matchExpressions=[])),
        "spec.targets[0].selector",
        "selector must not be empty",
        id="selector-empty-parts",
    ),
    pytest.param(
        target_spec(selector_target(matchLabels={f"k{i}": "v" for i in range(33)})),
        "spec.targets[0].selector.matchLabels",
        "at most 32",
        id="match-labels-33",
    ),
    pytest.param(
        target_spec(selector_target(matchLabels=["app=api"])),
        "spec.targets[0].selector.matchLabels",
        "must be an object",
        id="match-labels-list",
    ),
    pytest.param(
        target_spec(selector_target(matchLabels={"-app": "api"})),
        "spec.targets[0].selector.matchLabels",
        "'-app' is not a valid label key",
        id="label-key-bad",
    ),
    pytest.param(
        target_spec(selector_target(matchLabels={"example.com/" + "n" * 64: "api"})),
        "spec.targets[0].selector.matchLabels",
        "not a valid label key",
        id="label-key-name-too-long",
    ),
    pytest.param(
        target_spec(selector_target(matchLabels={"app": "two words"})),
        "spec.targets[0].selector.matchLabels",
        "not a valid label value",
        id="label-value-bad",
    ),
    pytest.param(
        target_spec(selector_target(matchLabels={"app": 1})),
        "spec.targets[0].selector.matchLabels",
        "must be a string",
        id="label-value-int",
    ),
    pytest.param(
        target_spec(selector_target(matchExpressions=[expression(f"k{i}", "Exists") for i in range(17)])),
        "spec.targets[0].selector.matchExpressions",
        "at most 16",
        id="expressions-17",
    ),
    pytest.param(
        target_spec(selector_target(matchExpressions=[{"operator": "Exists"}])),
        "spec.targets[0].selector.matchExpressions[0].key",
        "is required",
        id="expression-without-key",
    ),
    pytest.param(
        target_spec(selector_target(matchExpressions=[expression("tier", "Equals", ["db"])])),
        "spec.targets[0].selector.matchExpressions[0].operator",
        "must be one of In, NotIn, Exists, DoesNotExist",
        id="operator-unknown",
    ),
    pytest.param(
        target_spec(selector_target(matchExpressions=[expression("tier", "In")])),
        "spec.targets[0].selector.matchExpressions[0].values",
        "must not be empty for operator In",
        id="in-without-values",
    ),
    pytest.param(
        target_spec(selector_target(matchExpressions=[expression("tier", "NotIn", [])])),
        "spec.targets[0].selector.matchExpressions[0].values",
        "must not be empty for operator NotIn",
        id="notin-empty-values",
    ),
    pytest.param(
        target_spec(selector_target(matchExpressions=[expression("tier", "Exists", ["db"])])),
        "spec.targets[0].selector.matchExpressions[0].values",
        "must be empty for operator Exists",
        id="exists-with-values",
    ),
    pytest.param(
        target_spec(selector_target(matchExpressions=[expression("tier", "In", ["v"] * 65)])),
        "spec.targets[0].selector.matchExpressions[0].values",
        "at most 64",
        id="values-65",
    ),
    pytest.param(
        target_spec(selector_target(matchExpressions=[expression("tier", "In", ["db", "a b"])])),
        "spec.targets[0].selector.matchExpressions[0].values[1]",
        "not a valid label value",
        id="value-bad",
    ),
    # Schedule, verification, retention.
    pytest.param(secret_spec(rotateEvery="30d"), "spec.rotateEvery", "must be a duration", id="rotate-days"),
    pytest.param(secret_spec(rotateEvery=3600), "spec.rotateEvery", "duration string", id="rotate-number"),
    pytest.param(secret_spec(rotateEvery="59s"), "spec.rotateEvery", "between 1m and 8760h", id="rotate-too-often"),
    pytest.param(secret_spec(rotateEvery="8761h"), "spec.rotateEvery", "between 1m and 8760h", id="rotate-too-rarely"),
    pytest.param(secret_spec(verify={"timeout": "9s"}), "spec.verify.timeout", "between 10s and 24h", id="timeout-9s"),
    pytest.param(
        secret_spec(verify={"timeout": "25h"}), "spec.verify.timeout", "between 10s and 24h", id="timeout-25h"
    ),
    pytest.param(
        secret_spec(verify={"timeout": "24h", "stableFor": "61m"}),
        "spec.verify.stableFor",
        "between 0s and 1h",
        id="stable-61m",
    ),
    pytest.param(
        secret_spec(verify={"timeout": "30s", "stableFor": "30s"}),
        "spec.verify.stableFor",
        "shorter than timeout (30s)",
        id="stable-not-below-timeout",
    ),
    pytest.param(secret_spec(verify={"timeout": "10 m"}), "spec.verify.timeout", "duration", id="timeout-space"),
    pytest.param(
        secret_spec(verify={"interval": "1m"}), "spec.verify", "unknown field 'interval'", id="verify-unknown"
    ),
    pytest.param(secret_spec(verify="10m"), "spec.verify", "must be an object", id="verify-not-object"),
    pytest.param(secret_spec(retain=-1), "spec.retain", "between 0 and 10", id="retain-negative"),
    pytest.param(secret_spec(retain=11), "spec.retain", "between 0 and 10", id="retain-11"),
    pytest.param(secret_spec(retain="1"), "spec.retain", "must be an integer", id="retain-string"),
    pytest.param(secret_spec(retain=1.0), "spec.retain", "must be an integer", id="retain-float"),
    pytest.param(secret_spec(paused="no"), "spec.paused", "true or false", id="paused-string"),
]


@pytest.mark.parametrize(("spec", "field", "fragment"), INVALID_SPECS)
def test_parse_spec_refuses_with_the_field_and_the_problem(spec: Any, field: str, fragment: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(spec)
    assert caught.value.field == field
    assert fragment in caught.value.problem
    assert str(caught.value) == f"{field}: {caught.value.problem}"


def test_invalid_spec_reads_as_field_colon_problem() -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(secret_spec(generate=[{"key": "password"}, {"key": "username"}, {"key": "password"}]))
    assert str(caught.value) == "spec.generate[2].key: duplicate key 'password'"
    assert isinstance(caught.value, ValueError)


def test_the_first_problem_in_field_order_is_reported() -> None:
    spec = secret_spec(secretName="Bad", retain=99, targets=[])
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(spec)
    assert caught.value.field == "spec.secretName"


def test_messages_clip_long_names() -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(secret_spec(generate=[{"key": "/" * 200}]))
    assert len(caught.value.problem) < 250


# --- Constants never leak --------------------------------------------------

CANARY_SPECS = [
    pytest.param(
        secret_spec(generate=[{"key": "password", "value": CANARY}, {"key": "password", "value": CANARY}]),
        id="duplicate-key",
    ),
    pytest.param(secret_spec(generate=[{"key": "password", "value": CANARY, "length": 8}]), id="value-and-length"),
    pytest.param(secret_spec(generate=[{"key": "password", "value": CANARY * 200}]), id="value-too-long"),
    pytest.param(secret_spec(generate=[{"key": "password", "value": [CANARY]}]), id="value-not-a-string"),
    pytest.param(secret_spec(generate=[{"key": "password", "value": {CANARY: 1}}]), id="value-an-object"),
    pytest.param(
        secret_spec(type="kubernetes.io/dockerconfigjson", generate=[{"key": ".dockerconfigjson", "value": CANARY}]),
        id="docker-config-not-json",
    ),
    pytest.param(
        secret_spec(
            type="kubernetes.io/dockerconfigjson", generate=[{"key": ".dockerconfigjson", "value": "{" + CANARY}]
        ),
        id="docker-config-broken-json",
    ),
    pytest.param(
        secret_spec(type="kubernetes.io/basic-auth", generate=[{"key": "token", "value": CANARY}]),
        id="basic-auth-missing-keys",
    ),
    pytest.param(secret_spec(generate=[{"key": "user", "value": CANARY}], retain=99), id="later-field-wrong"),
    pytest.param(account_spec(generate=[{"key": "user", "value": CANARY}]), id="generate-in-account-mode"),
    # A credential pasted into the wrong field is not quoted back either.
    pytest.param(secret_spec(generate=[{"key": "k", "alphabet": CANARY}]), id="pasted-into-alphabet"),
    pytest.param(secret_spec(generate=[{"key": "k", "length": CANARY}]), id="pasted-into-length"),
    pytest.param(secret_spec(rotateEvery=CANARY), id="pasted-into-rotate-every"),
    pytest.param(secret_spec(type=CANARY), id="pasted-into-type"),
    pytest.param(secret_spec(paused=CANARY), id="pasted-into-paused"),
    pytest.param(target_spec(selector_target(matchLabels={"app": CANARY + " x"})), id="pasted-into-label-value"),
]


@pytest.mark.parametrize("spec", CANARY_SPECS)
def test_no_message_contains_a_constant_value(spec: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(spec)
    for text in (str(caught.value), repr(caught.value), caught.value.problem, caught.value.field):
        assert CANARY not in text


def test_reprs_of_a_parsed_spec_hide_constants() -> None:
    spec = parse_spec(secret_spec(generate=[{"key": "password", "value": CANARY}]))
    assert CANARY not in repr(spec)
    assert CANARY not in str(spec.generate[0])
    assert spec.generate[0].value == CANARY


def test_snapshot_never_holds_a_constant() -> None:
    spec = parse_spec(secret_spec(generate=[{"key": "password"}, {"key": "username", "value": CANARY}]))
    assert CANARY not in json.dumps(spec_to_snapshot(spec))


def test_a_constant_key_that_disappeared_is_reported_without_its_value() -> None:
    started = parse_spec(secret_spec(generate=[{"key": "password"}, {"key": "username", "value": CANARY}]))
    current = parse_spec(secret_spec(generate=[{"key": "password"}]))
    with pytest.raises(InvalidSpec) as caught:
        spec_from_snapshot(spec_to_snapshot(started), current)
    assert caught.value.field == "status.rotation.spec.generate[1].key"
    assert "'username' is no longer a constant" in caught.value.problem
    assert CANARY not in str(caught.value)


# --- Defaults and accepted shapes --------------------------------------------


def test_secret_mode_defaults() -> None:
    spec = parse_spec({"secretName": "db-credentials", "generate": [{"key": "password"}]})
    assert spec == RotationSpec(
        secret_name="db-credentials",
        secret_type=SecretType.OPAQUE,
        generate=(GenerateRule(key="password", length=32, alphabet=Alphabet.ALPHANUMERIC),),
        from_secret=None,
        service_account=None,
        targets=None,
        rotate_every=None,
        verify=VerifySpec(timeout=timedelta(minutes=10), stable_for=timedelta(seconds=30)),
        retain=1,
        paused=False,
    )
    assert spec.base_name == "db-credentials"
    assert spec.credential_kind == "Secret"


def test_service_account_mode_defaults() -> None:
    spec = parse_spec({"serviceAccount": {"name": "deployer"}})
    assert spec.service_account == ServiceAccountSpec(name="deployer", token_secret=False)
    assert (spec.secret_name, spec.secret_type, spec.generate, spec.from_secret) == (None, "Opaque", (), None)
    assert spec.base_name == "deployer"
    assert spec.credential_kind == "ServiceAccount"


def test_a_full_spec_is_read_field_by_field() -> None:
    spec = parse_spec(
        secret_spec(
            type="kubernetes.io/basic-auth",
            generate=[{"key": "password", "length": 64, "alphabet": "ascii"}, {"key": "username", "value": "shop"}],
            targets=[
                {"kind": "Deployment", "name": "api"},
                selector_target(matchExpressions=[expression("tier", "Exists")], matchLabels={}),
            ],
            rotateEvery="1h30m",
            verify={"timeout": "5m", "stableFor": "0s"},
            retain=0,
            paused=True,
        )
    )
    assert spec.secret_type == SecretType.BASIC_AUTH
    assert spec.generate == (
        GenerateRule(key="password", length=64, alphabet=Alphabet.ASCII),
        GenerateRule(key="username", value="shop"),
    )
    assert spec.targets == (
        TargetSelector(kind=WorkloadKind.DEPLOYMENT, name="api"),
        TargetSelector(
            kind=WorkloadKind.DEPLOYMENT, selector={"matchExpressions": [{"key": "tier", "operator": "Exists"}]}
        ),
    )
    assert spec.rotate_every == timedelta(hours=1, minutes=30)
    assert spec.verify == VerifySpec(timeout=timedelta(minutes=5), stable_for=timedelta(0))
    assert (spec.retain, spec.paused) == (0, True)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(secret_spec(rotateEvery=None, targets=None, verify=None, paused=None), id="nulls-are-absent"),
        pytest.param(secret_spec(secretName="a" * 241), id="longest-secret-name"),
        pytest.param(secret_spec(from_={"secretName": "db-credentials-next"}), id="from"),
        pytest.param(secret_spec(generate=[{"key": ".hidden"}, {"key": "a..b"}, {"key": "-_"}]), id="odd-keys"),
        pytest.param(secret_spec(generate=[{"key": "empty", "value": ""}]), id="empty-constant"),
        pytest.param(
            target_spec({"kind": "Deployment", "name": "api"}, {"kind": "StatefulSet", "name": "api"}),
            id="same-name-other-kind",
        ),
        pytest.param(
            target_spec(selector_target(matchLabels={"app.kubernetes.io/name": "api", "empty": ""})),
            id="prefixed-label-key-and-empty-value",
        ),
        pytest.param(
            target_spec(selector_target(matchExpressions=[expression("tier", "DoesNotExist", [])])),
            id="does-not-exist-with-empty-values",
        ),
        pytest.param(secret_spec(rotateEvery="1m", verify={"timeout": "10s", "stableFor": "9s"}), id="lower-bounds"),
        pytest.param(secret_spec(rotateEvery="8760h", verify={"timeout": "24h", "stableFor": "1h"}), id="upper-bounds"),
        pytest.param(
            secret_spec(type="kubernetes.io/tls", generate=[{"key": "tls.crt"}, {"key": "tls.key"}]), id="tls-keys"
        ),
        pytest.param(
            secret_spec(type="kubernetes.io/dockerconfigjson", generate=[{"key": ".dockerconfigjson", "value": "{}"}]),
            id="docker-config",
        ),
        pytest.param(account_spec(serviceAccount={"name": "deployer", "tokenSecret": True}), id="account-token"),
    ],
)
def test_parse_spec_accepts(spec: dict[str, Any]) -> None:
    parse_spec(spec)


def test_selector_is_normalised_and_detached_from_the_input() -> None:
    raw = selector_target(
        matchLabels={"app": "api"},
        matchExpressions=[expression("tier", "In", ["db"]), expression("canary", "DoesNotExist", [])],
    )
    spec = parse_spec(target_spec(raw))
    raw["selector"]["matchLabels"]["app"] = "changed"
    assert spec.targets is not None
    assert spec.targets[0].selector == {
        "matchLabels": {"app": "api"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["db"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }


# --- Durations ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0s", timedelta(0), id="zero"),
        pytest.param("90s", timedelta(seconds=90), id="seconds"),
        pytest.param("10m", timedelta(minutes=10), id="minutes"),
        pytest.param("720h", timedelta(hours=720), id="hours"),
        pytest.param("1h30m", timedelta(hours=1, minutes=30), id="combined"),
        pytest.param("2h0m5s", timedelta(hours=2, seconds=5), id="zero-group"),
        pytest.param("1m1m", timedelta(minutes=2), id="repeated-units-add-up"),
        pytest.param("007s", timedelta(seconds=7), id="leading-zeros"),
    ],
)
def test_parse_duration_reads(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "spec.x") == expected
    assert parse_duration(format_duration(expected), "spec.x") == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("10", id="no-unit"),
        pytest.param("h", id="no-number"),
        pytest.param("1d", id="days"),
        pytest.param("1.5h", id="fraction"),
        pytest.param("-1m", id="negative"),
        pytest.param("1H", id="upper-case"),
        pytest.param(" 1m", id="leading-space"),
        pytest.param("1m\n", id="trailing-newline"),
        pytest.param("1ms", id="milliseconds"),
        pytest.param("1" * 40 + "s", id="text-too-long"),
        pytest.param("9" * 30 + "h", id="beyond-timedelta"),
    ],
)
def test_parse_duration_refuses_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_duration(text, "spec.verify.timeout")
    assert caught.value.field == "spec.verify.timeout"


def test_format_duration_writes_whole_seconds() -> None:
    assert format_duration(timedelta(minutes=10)) == "600s"
    assert format_duration(timedelta(0)) == "0s"


# --- Selector matching ---------------------------------------------------------

WEB = {"app": "web", "tier": "frontend"}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param({"matchLabels": {"app": "web"}}, WEB, True, id="label-equal"),
        pytest.param({"matchLabels": {"app": "api"}}, WEB, False, id="label-differs"),
        pytest.param({"matchLabels": {"app": "web", "env": "prod"}}, WEB, False, id="label-missing"),
        pytest.param({"matchExpressions": [expression("tier", "In", ["frontend", "edge"])]}, WEB, True, id="in"),
        pytest.param({"matchExpressions": [expression("tier", "In", ["backend"])]}, WEB, False, id="in-other-value"),
        pytest.param({"matchExpressions": [expression("env", "In", ["prod"])]}, WEB, False, id="in-absent-label"),
        pytest.param({"matchExpressions": [expression("tier", "NotIn", ["backend"])]}, WEB, True, id="notin"),
        pytest.param({"matchExpressions": [expression("tier", "NotIn", ["frontend"])]}, WEB, False, id="notin-hit"),
        pytest.param({"matchExpressions": [expression("env", "NotIn", ["prod"])]}, WEB, True, id="notin-absent-label"),
        pytest.param({"matchExpressions": [expression("app", "Exists")]}, WEB, True, id="exists"),
        pytest.param({"matchExpressions": [expression("env", "Exists")]}, WEB, False, id="exists-absent"),
        pytest.param({"matchExpressions": [expression("env", "DoesNotExist")]}, WEB, True, id="does-not-exist"),
        pytest.param({"matchExpressions": [expression("app", "DoesNotExist")]}, WEB, False, id="does-not-exist-hit"),
        pytest.param(
            {"matchLabels": {"app": "web"}, "matchExpressions": [expression("tier", "In", ["backend"])]},
            WEB,
            False,
            id="all-must-hold",
        ),
        pytest.param({"matchExpressions": [expression("app", "Exists")]}, {}, False, id="no-labels"),
    ],
)
def test_selector_matches_like_kubernetes(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected
    target = TargetSelector(kind=WorkloadKind.STATEFULSET, selector=selector)
    assert target.matches("StatefulSet", "any", labels) is expected


def test_a_target_matches_only_its_kind() -> None:
    target = TargetSelector(kind=WorkloadKind.DEPLOYMENT, selector={"matchLabels": {"app": "web"}})
    assert target.matches("Deployment", "web", WEB)
    assert not target.matches("DaemonSet", "web", WEB)


def test_a_named_target_matches_only_its_name_whatever_the_labels() -> None:
    target = TargetSelector(kind=WorkloadKind.DEPLOYMENT, name="api")
    assert target.matches("Deployment", "api", {})
    assert not target.matches("Deployment", "api-canary", WEB)
    assert not target.matches("StatefulSet", "api", {})


# --- Snapshots ---------------------------------------------------------------

ROUND_TRIP_SPECS = [
    pytest.param(secret_spec(), id="generate-with-constant"),
    pytest.param(
        secret_spec(
            type="kubernetes.io/basic-auth",
            generate=[{"key": "password", "length": 1024, "alphabet": "base64url"}, {"key": "username", "value": ""}],
            targets=[
                {"kind": "DaemonSet", "name": "agent"},
                selector_target(
                    matchLabels={"app": "api"},
                    matchExpressions=[expression("tier", "NotIn", ["db", "cache"]), expression("canary", "Exists")],
                ),
            ],
            rotateEvery="1h30m15s",
            verify={"timeout": "24h", "stableFor": "1h"},
            retain=10,
            paused=True,
        ),
        id="everything",
    ),
    pytest.param(secret_spec(from_={"secretName": "db-credentials-next"}), id="from"),
    pytest.param(account_spec(serviceAccount={"name": "deployer", "tokenSecret": True}, retain=0), id="account"),
]


@pytest.mark.parametrize("raw", ROUND_TRIP_SPECS)
def test_snapshot_round_trips_exactly(raw: dict[str, Any]) -> None:
    spec = parse_spec(raw)
    snapshot = spec_to_snapshot(spec)
    stored = json.loads(json.dumps(snapshot))  # what status gives back
    assert stored == snapshot
    assert spec_from_snapshot(stored, spec) == spec


def test_snapshot_is_the_crd_form_with_defaults_written_out() -> None:
    spec = parse_spec(
        secret_spec(
            generate=[{"key": "password"}, {"key": "username", "value": "shop"}],
            targets=[{"kind": "Deployment", "name": "api"}],
        )
    )
    assert spec_to_snapshot(spec) == {
        "secretName": "db-credentials",
        "type": "Opaque",
        "generate": [
            {"key": "password", "length": 32, "alphabet": "alphanumeric"},
            {"key": "username", "constant": True},
        ],
        "targets": [{"kind": "Deployment", "name": "api"}],
        "verify": {"timeout": "600s", "stableFor": "30s"},
        "retain": 1,
        "paused": False,
    }


def test_snapshot_takes_constants_from_the_current_spec() -> None:
    started = parse_spec(secret_spec(generate=[{"key": "password"}, {"key": "username", "value": "shop"}]))
    current = parse_spec(secret_spec(generate=[{"key": "username", "value": "shop2"}], retain=5))
    restored = spec_from_snapshot(spec_to_snapshot(started), current)
    assert restored.generate == (GenerateRule(key="password"), GenerateRule(key="username", value="shop2"))
    assert restored.retain == 1  # everything else is as the rotation started


def test_a_constant_that_became_random_cannot_be_restored() -> None:
    started = parse_spec(secret_spec(generate=[{"key": "username", "value": "shop"}]))
    current = parse_spec(secret_spec(generate=[{"key": "username"}]))
    with pytest.raises(InvalidSpec, match="no longer a constant"):
        spec_from_snapshot(spec_to_snapshot(started), current)


def test_snapshot_does_not_share_selectors_with_the_spec() -> None:
    spec = parse_spec(target_spec(selector_target(matchExpressions=[expression("tier", "In", ["db"])])))
    snapshot = spec_to_snapshot(spec)
    snapshot["targets"][0]["selector"]["matchExpressions"][0]["values"].append("cache")
    assert spec.targets is not None
    assert spec.targets[0].selector == {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        pytest.param({"retain": 99}, "status.rotation.spec.retain", "between 0 and 10", id="out-of-range"),
        pytest.param({"namespace": "other"}, "status.rotation.spec", "own namespace", id="namespace"),
        pytest.param(
            {"generate": [{"key": "username", "value": "planted"}]},
            "status.rotation.spec.generate[0].value",
            "never records constant values",
            id="planted-value",
        ),
        pytest.param(
            {"generate": [{"key": "username", "constant": True, "length": 8}]},
            "status.rotation.spec.generate[0]",
            "exactly {key, constant: true}",
            id="constant-with-length",
        ),
        pytest.param(
            {"generate": [{"key": "username", "constant": "yes"}]},
            "status.rotation.spec.generate[0]",
            "exactly {key, constant: true}",
            id="constant-not-true",
        ),
    ],
)
def test_a_tampered_snapshot_is_checked_like_a_spec(change: dict[str, Any], field: str, fragment: str) -> None:
    spec = parse_spec(secret_spec())
    snapshot = {**spec_to_snapshot(spec), **change}
    with pytest.raises(InvalidSpec) as caught:
        spec_from_snapshot(snapshot, spec)
    assert caught.value.field == field
    assert fragment in caught.value.problem


def test_a_snapshot_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidSpec, match=r"^status\.rotation\.spec: must be an object$"):
        spec_from_snapshot([], parse_spec(secret_spec()))  # type: ignore[arg-type]


# --- Value generation ----------------------------------------------------------

EXPECTED_CHARACTERS = {
    Alphabet.ALPHANUMERIC: set(string.ascii_letters + string.digits),
    Alphabet.HEX: set("0123456789abcdef"),
    Alphabet.BASE64URL: set(string.ascii_letters + string.digits + "-_"),
    Alphabet.ASCII: {chr(code) for code in range(0x21, 0x7F)},
}


@pytest.mark.parametrize("alphabet", list(Alphabet), ids=str)
@pytest.mark.parametrize("length", [8, 32, 1024])
def test_random_values_have_the_length_and_characters_asked_for(alphabet: Alphabet, length: int) -> None:
    value = generate_value(GenerateRule(key="k", length=length, alphabet=alphabet))
    assert len(value) == length
    assert set(value) <= EXPECTED_CHARACTERS[alphabet]


@pytest.mark.parametrize("alphabet", list(Alphabet), ids=str)
def test_random_values_draw_from_the_whole_alphabet(alphabet: Alphabet) -> None:
    # 20 draws of 1024 characters: missing any one of at most 94 characters has
    # probability below 94 * (93/94)**20480, far under 1e-90.
    seen: set[str] = set()
    for _ in range(20):
        seen |= set(generate_value(GenerateRule(key="k", length=1024, alphabet=alphabet)))
    assert seen == EXPECTED_CHARACTERS[alphabet]


def test_ascii_alphabet_has_no_space_or_control_characters() -> None:
    assert " " not in EXPECTED_CHARACTERS[Alphabet.ASCII]
    value = generate_value(GenerateRule(key="k", length=1024, alphabet=Alphabet.ASCII))
    assert value.isprintable() and " " not in value


def test_random_values_differ_between_versions() -> None:
    rule = GenerateRule(key="password")
    assert generate_value(rule) != generate_value(rule)


def test_a_constant_is_carried_as_is() -> None:
    assert generate_value(GenerateRule(key="username", value="shop")) == "shop"
    assert generate_value(GenerateRule(key="username", value="")) == ""


# --- Version names -----------------------------------------------------------


def test_version_names_round_trip() -> None:
    assert version_name("db", 1) == "db-v1"
    assert parse_revision("db", version_name("db", 1234567890)) == 1234567890
    assert len(version_name("a" * 241, 9_999_999_999)) == 253


@pytest.mark.parametrize(
    "name",
    ["db", "db-v", "db-v0", "db-v01", "db-v1x", "db-v-1", "db-v+1", "db-v²", "db-v1 ", "dbx-v1", "db-vv1", "db-v1-v2"],
)
def test_parse_revision_accepts_only_exact_version_names(name: str) -> None:
    assert parse_revision("db", name) is None


def test_a_version_of_a_longer_base_is_not_a_version_of_a_shorter_one() -> None:
    assert parse_revision("db", "db-v1-v2") is None
    assert parse_revision("db-v1", "db-v1-v2") == 2


def test_revisions_start_at_one() -> None:
    with pytest.raises(ValueError):
        version_name("db", 0)
    with pytest.raises(ValueError):
        version_labels("db-rotation", 0)


def test_version_labels_name_the_rotation_and_revision() -> None:
    assert version_labels("db-rotation", 7) == {ROTATION_LABEL: "db-rotation", REVISION_LABEL: "7"}
    assert ROTATION_LABEL == "rotation.sre.dev/rotation"
    assert REVISION_LABEL == "rotation.sre.dev/revision"


def test_version_labels_refuse_a_name_that_cannot_be_a_label_value() -> None:
    with pytest.raises(ValueError):
        version_labels("r" * 64, 1)
