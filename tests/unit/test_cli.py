"""``secretrotation run``'s namespace options (adapters/scope.py): what the operator acts in."""

from __future__ import annotations

import pytest

from secretrotation.adapters import cli, scope

OWN = "secretrotation-system"


def scope_of(*argv: str, own_namespace: str | None = OWN) -> scope.Scope:
    return scope.from_arguments(cli._parser().parse_args(["run", *argv]), own_namespace)


def refusal(*argv: str) -> str:
    with pytest.raises(scope.ScopeError) as raised:
        scope_of(*argv)
    return str(raised.value)


def test_named_namespaces_are_watched_and_no_other() -> None:
    watched = scope_of("--namespace", "shop", "-n", "billing", "--namespace", "shop")
    assert watched == scope.Scope(clusterwide=False, namespaces=("shop", "billing"))
    assert watched.watches("shop") and watched.watches("billing")
    assert not watched.watches("payments")
    assert not watched.watches("kube-system")


def test_a_named_namespace_is_watched_even_if_it_is_kube_system_or_the_operators_own() -> None:
    watched = scope_of("-n", "kube-system", "-n", OWN)
    assert watched.watches("kube-system") and watched.watches(OWN)


def test_all_namespaces_excludes_kube_system_and_the_operators_own_namespace() -> None:
    watched = scope_of("--all-namespaces")
    assert watched == scope.Scope(clusterwide=True, excluded=frozenset({"kube-system", OWN}))
    assert watched.watches("shop")
    assert not watched.watches("kube-system")
    assert not watched.watches(OWN)
    assert watched.describe() == f"every namespace except kube-system, {OWN}"


def test_outside_a_pod_all_namespaces_excludes_kube_system() -> None:
    watched = scope_of("-A", own_namespace=None)
    assert watched.excluded == {"kube-system"}


def test_exclude_namespace_adds_to_the_default_exclusions() -> None:
    watched = scope_of("-A", "--exclude-namespace", "payments", "--exclude-namespace", "vault")
    assert watched.excluded == {"kube-system", OWN, "payments", "vault"}
    assert not watched.watches("payments")
    assert watched.watches("shop")


def test_naming_a_default_exclusion_with_all_namespaces_watches_it_too() -> None:
    watched = scope_of("-A", "--namespace", "kube-system")
    assert watched.excluded == {OWN}
    assert watched.watches("kube-system")


def test_all_namespaces_with_an_ordinary_namespace_named_is_refused_not_read_as_only_that_one() -> None:
    message = refusal("-A", "-n", "shop")
    assert "shop is watched anyway" in message, message


def test_a_namespace_both_named_and_excluded_is_refused() -> None:
    message = refusal("-A", "-n", "kube-system", "--exclude-namespace", "kube-system")
    assert "both named with --namespace and excluded" in message, message


def test_exclude_namespace_without_all_namespaces_is_refused() -> None:
    message = refusal("-n", "shop", "--exclude-namespace", "billing")
    assert "only with --all-namespaces" in message, message


def test_no_namespace_option_is_refused() -> None:
    assert "--namespace" in refusal() and "--all-namespaces" in refusal()


@pytest.mark.parametrize("pattern", ["shop-*", "!kube-system", "shop,billing", "Shop", "shop?", ""])
def test_a_pattern_or_an_invalid_name_is_refused_since_kopf_would_drop_it_silently(pattern: str) -> None:
    assert "exact name" in refusal("--namespace", pattern)
    assert "exact name" in refusal("-A", "--exclude-namespace", pattern)


def test_main_reports_a_refusal_as_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "--exclude-namespace", "billing", "-n", "shop"])
    assert exited.value.code == 2
    assert "--exclude-namespace applies only with --all-namespaces" in capsys.readouterr().err
