"""Which namespaces the operator acts in: the ``--namespace`` options of ``secretrotation run``.

Namespaced, the default install: exactly the namespaces named with ``--namespace``, each
one granted by a RoleBinding. kopf watches each of them by name and the operator needs no
right outside them (``settings.scanning.disabled``: kopf neither lists namespaces nor
watches CRDs). That is also why names must be exact: without a list of namespaces, kopf
would silently drop a pattern such as ``shop-*``.

Cluster-wide, opt-in (``--all-namespaces``): kopf watches every namespace with one stream
per kind, and the handlers drop every event from an excluded namespace, so nothing there is
read by name, written or reported. Excluded: ``kube-system`` and the operator's own
namespace (its workloads are the cluster's and its own), unless named with ``--namespace``,
and each ``--exclude-namespace``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass

EXCLUDED_BY_DEFAULT = "kube-system"
# A namespace name is a DNS-1123 label.
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class ScopeError(ValueError):
    """Options that name no namespaces, or that contradict each other; the message says which."""


@dataclass(frozen=True)
class Scope:
    """Namespaced (``namespaces``) or cluster-wide (every namespace but ``excluded``)."""

    clusterwide: bool
    namespaces: tuple[str, ...] = ()  # namespaced mode: exactly these
    excluded: frozenset[str] = frozenset()  # cluster-wide mode: all but these

    def watches(self, namespace: str) -> bool:
        if self.clusterwide:
            return namespace not in self.excluded
        return namespace in self.namespaces

    def describe(self) -> str:
        if not self.clusterwide:
            return "namespaces " + ", ".join(self.namespaces)
        if not self.excluded:
            return "every namespace"
        return "every namespace except " + ", ".join(sorted(self.excluded))


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=[],
        metavar="NAME",
        help="watch this namespace (repeat for more; exact names). With --all-namespaces: watch kube-system or "
        "the operator's own namespace as well",
    )
    run.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace but the excluded ones")
    run.add_argument(
        "--exclude-namespace",
        action="append",
        dest="excluded_namespaces",
        default=[],
        metavar="NAME",
        help=f"with --all-namespaces: never act in this namespace (repeat for more). Always excluded unless named "
        f"with --namespace: {EXCLUDED_BY_DEFAULT} and the operator's own namespace ($POD_NAMESPACE)",
    )


def from_arguments(args: argparse.Namespace, own_namespace: str | None) -> Scope:
    """The scope the options ask for; ``own_namespace`` is the operator's (None outside a pod). Raises ScopeError."""
    named = _exact_names("--namespace", args.namespaces)
    excluded = _exact_names("--exclude-namespace", args.excluded_namespaces)
    if not args.all_namespaces:
        if not named:
            raise ScopeError("name the namespaces to watch with --namespace, or opt in to --all-namespaces")
        if excluded:
            raise ScopeError("--exclude-namespace applies only with --all-namespaces")
        return Scope(clusterwide=False, namespaces=named)
    by_default = {EXCLUDED_BY_DEFAULT, *([own_namespace] if own_namespace else [])}
    for name in named:
        if name in excluded:
            raise ScopeError(f"{name} is both named with --namespace and excluded with --exclude-namespace")
        if name not in by_default:
            # Refused, not ignored: "-A -n shop" must not be read as "only shop" when it means everything.
            raise ScopeError(
                f"with --all-namespaces, --namespace only brings back a namespace excluded by default "
                f"({', '.join(sorted(by_default))}); {name} is watched anyway"
            )
    return Scope(clusterwide=True, excluded=frozenset(by_default - set(named)) | frozenset(excluded))


def _exact_names(option: str, values: Sequence[str]) -> tuple[str, ...]:
    for value in values:
        if not _NAMESPACE_NAME.fullmatch(value):
            raise ScopeError(
                f"{option} takes a namespace's exact name, and {value!r} is not one "
                "(no patterns: the operator does not list namespaces)"
            )
    return tuple(dict.fromkeys(values))
