"""``kubectl srot``: operate SecretRotations from the terminal (a kubectl plugin).

Installed as the console script ``kubectl-srot``, so ``kubectl srot status`` finds it on PATH.
kubectl's conventions: ``-n/--namespace`` (default: the context's namespace), ``--context``,
``--kubeconfig``, ``-o json|yaml`` (default: text for people). Exit 0 on success, 1 on an
error or a failed ``rotate --wait``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from secretrotation.adapters.srot import render
from secretrotation.core import names, record
from secretrotation.core.conditions import Reason
from secretrotation.core.preview import preview
from secretrotation.core.spec import InvalidSpec, parse_duration
from secretrotation.shell.api import BoundedApiClient, safe_api_error
from secretrotation.shell.console import Console, NotFound, observed_for, resource_of

KIND = f"secretrotation.{names.GROUP}"
Command = Callable[[Console, str, argparse.Namespace], int]


def _common(default: Any) -> argparse.ArgumentParser:
    """kubectl's flags, before or after the command (after it, an absent flag keeps the one before)."""
    common = argparse.ArgumentParser(add_help=False, argument_default=default)
    common.add_argument("-n", "--namespace", help="the namespace (default: the context's, else default)")
    common.add_argument("--context", help="the kubeconfig context to use")
    common.add_argument("--kubeconfig", help="the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    common.add_argument("-o", "--output", choices=("json", "yaml"), help="print for machines, not people")
    return common


def parser() -> argparse.ArgumentParser:
    description = "Operate SecretRotations from the terminal (a kubectl plugin)."
    top = argparse.ArgumentParser(prog="kubectl srot", description=description, parents=[_common(None)])
    common = _common(argparse.SUPPRESS)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", parents=[common], help="phase, versions, targets, failures")
    status.add_argument("name", nargs="?", help="one SecretRotation, in detail (default: a table of all)")
    status.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    rotate = commands.add_parser("rotate", parents=[common], help="request a rotation now")
    rotate.add_argument("name")
    rotate.add_argument("--wait", action="store_true", help="wait until it has rotated, or failed")
    rotate.add_argument("--timeout", default="10m", help="how long --wait waits (90s, 10m, 1h; default 10m)")
    plan = commands.add_parser("plan", parents=[common], help="what a rotation now would do (a dry run)")
    plan.add_argument("name")
    history = commands.add_parser("history", parents=[common], help=f"the last {record.MAX_HISTORY} rotations")
    history.add_argument("name")
    for verb, what in (("pause", "hold every rotation (spec.paused)"), ("resume", "let rotations start again")):
        commands.add_parser(verb, parents=[common], help=what).add_argument("name")
    return top


def connect(args: argparse.Namespace) -> tuple[client.ApiClient, str]:
    """An API client for the kubeconfig and context asked for (or in-cluster), and the default namespace."""
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=args.kubeconfig, context=args.context, client_configuration=configuration
        )
        contexts, active = config.list_kube_config_contexts(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
        chosen = next((c for c in contexts if c["name"] == args.context), active) if args.context else active
        namespace = (chosen.get("context") or {}).get("namespace") or "default"
    except ConfigException:
        if args.kubeconfig or args.context:
            raise
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as found:
            namespace = found.read().strip()
    return BoundedApiClient(configuration=configuration), args.namespace or namespace


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        api, namespace = connect(args)
        with api:
            return COMMANDS[args.command](Console(api), namespace, args)
    except NotFound as missing:
        print(f"Error from server (NotFound): {missing}", file=sys.stderr)
    except ApiException as error:
        print(f"Error from server: {safe_api_error(error)}", file=sys.stderr)
    except (ConfigException, InvalidSpec, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
    return 1


def _print(value: Any, args: argparse.Namespace, text: str) -> None:
    print(render.machine(value, args.output) if args.output else text)


def status(console: Console, namespace: str, args: argparse.Namespace) -> int:
    if args.name:
        body = console.get(namespace, args.name)
        _print(body, args, render.status_details(body))
        return 0
    bodies = console.list(None if args.all_namespaces else namespace)
    if not bodies and not args.output:
        where = "any namespace" if args.all_namespaces else f"{namespace} namespace"
        print(f"No SecretRotations found in {where}.", file=sys.stderr)
        return 0
    listed = {"apiVersion": "v1", "kind": "List", "items": bodies}
    _print(listed, args, render.status_table(bodies, all_namespaces=args.all_namespaces))
    return 0


def request_value(now: datetime) -> str:
    """A fresh requested-at value: RFC 3339 in UTC, to the microsecond (two requests never share one)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def settled(body: Mapping[str, Any], request: str) -> bool:
    """The request was handled and its rotation is over: Ready, or Stalled (a rollback that failed
    stalls with the rotation still in flight, and needs a human too)."""
    rec = record.read(body.get("status") or {})
    if rec.last_handled_request != request:
        return False
    ready, stalled = rec.condition("Ready") or {}, rec.condition("Stalled") or {}
    if stalled.get("status") == "True":
        return rec.rotation is None or stalled.get("reason") == Reason.ROLLBACK_FAILED
    return rec.rotation is None and ready.get("status") == "True"


def rotate(console: Console, namespace: str, args: argparse.Namespace) -> int:
    timeout = parse_duration(args.timeout, "--timeout").total_seconds()
    value = request_value(datetime.now(UTC))
    body = console.request(namespace, args.name, value)
    print(f"{KIND}/{args.name} rotation requested ({names.REQUESTED_AT_ANNOTATION}={value})", file=sys.stderr)
    if (body.get("spec") or {}).get("paused"):
        print(f"warning: {args.name} is paused: the rotation starts once resumed", file=sys.stderr)
    if not args.wait:
        if args.output:
            _print(body, args, "")
        return 0
    body = console.wait(body, lambda b: settled(b, value), timeout)
    rec = record.read(body.get("status") or {})
    ready, stalled = rec.condition("Ready") or {}, rec.condition("Stalled") or {}
    if args.output:
        _print(body, args, "")
    if settled(body, value) and stalled.get("status") != "True":
        if not args.output:
            print(f"{KIND}/{args.name} rotated: {rec.current} in use (revision {rec.revision}): {ready.get('message')}")
        return 0
    if settled(body, value):
        print(f"error: rotation failed: {stalled.get('reason')}: {stalled.get('message')}", file=sys.stderr)
        return 1
    where = f"phase {rec.phase.value}, Ready {ready.get('status')} ({ready.get('reason')}: {ready.get('message')})"
    if stalled.get("status") == "True":
        where += f"; Stalled {stalled.get('reason')}: {stalled.get('message')}"
    print(f"error: timed out after {args.timeout} waiting for the rotation: {where}", file=sys.stderr)
    return 1


def plan(console: Console, namespace: str, args: argparse.Namespace) -> int:
    resource = resource_of(console.get(namespace, args.name))
    fetch = console.observe(resource, datetime.now(UTC))
    dry_run = observed_for(fetch, lambda observed: preview(resource, observed))
    _print(dry_run, args, render.preview_text(dry_run))
    return 0


def history(console: Console, namespace: str, args: argparse.Namespace) -> int:
    body = console.get(namespace, args.name)
    _print((body.get("status") or {}).get("history") or [], args, render.history_table(body))
    return 0


def _pausing(paused: bool) -> Command:
    def command(console: Console, namespace: str, args: argparse.Namespace) -> int:
        body = console.set_paused(namespace, args.name, paused)
        _print(body, args, f"{KIND}/{args.name} {'paused' if paused else 'resumed'}")
        return 0

    return command


COMMANDS: dict[str, Command] = {
    "status": status,
    "rotate": rotate,
    "plan": plan,
    "history": history,
    "pause": _pausing(True),
    "resume": _pausing(False),
}
