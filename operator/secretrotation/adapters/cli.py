"""``secretrotation run``: start the operator.

    secretrotation run --namespace shop --namespace billing
    secretrotation run --all-namespaces --exclude-namespace payments --metrics-port 8080 --log-format json
    secretrotation run --all-namespaces --leader-elect

Without ``--leader-elect`` it runs standalone (no kopf peering): deploy one replica with
the Recreate strategy. With it, any number of replicas may run: the one holding the
leader Lease acts, the others stand by without watching anything (``shell/leader.py``).
Every step is resumable from status, so a restart or a takeover loses nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from types import FrameType

import kopf
from kubernetes import config
from prometheus_client import start_http_server

from secretrotation.adapters import scope
from secretrotation.shell import leader, metrics, steplog


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="secretrotation", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator")
    scope.add_arguments(run)
    run.add_argument("--metrics-port", type=int, default=8080, help="serve /metrics here (0: off)")
    run.add_argument("--liveness-port", type=int, default=8081, help="serve /healthz here (0: off)")
    run.add_argument("--bind", default="0.0.0.0", help="address for the metrics and liveness servers")
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("--verbose", action="store_true", help="log every step's decision (never values)")
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="act only while holding the leader Lease (for more than one replica); stand by otherwise",
    )
    run.add_argument(
        "--leader-election-namespace",
        help="namespace of the Lease (default: $POD_NAMESPACE, else the pod's own namespace)",
    )
    run.add_argument(
        "--leader-election-id",
        default=leader.DEFAULT_LEASE_NAME,
        help=f"name of the Lease (default: {leader.DEFAULT_LEASE_NAME})",
    )
    return parser


def _stand_by(elector: leader.Elector, stop: threading.Event, bind: str, liveness_port: int) -> bool:
    """Wait for the Lease, answering liveness meanwhile. False when stopped by a signal first."""
    probe = leader.StandbyProbe(bind, liveness_port, elector.healthy) if liveness_port else None
    try:
        elector.start()
        leading = elector.wait_leading(stop)
    finally:
        if probe is not None:
            probe.stop()  # kopf serves the liveness port from now on
    if leading and not stop.is_set():
        return True
    elector.release()
    logging.getLogger("secretrotation.leader").info("Stopped while standing by.")
    return False


async def _operate(args: argparse.Namespace, watched: scope.Scope, signalled: threading.Event, handler: object) -> None:
    """``kopf.operator``; a signal caught by ``handler`` before kopf handles signals itself is passed on to kopf.

    kopf installs its handlers as it starts. Without this, a SIGTERM just before then would
    either end the process by the default action (a leader would leave its Lease to expire
    instead of releasing it) or be lost.
    """

    async def pass_on_an_early_signal() -> None:
        while signal.getsignal(signal.SIGTERM) is handler:  # until asyncio's, for kopf, replaces it
            await asyncio.sleep(0.01)
        if signalled.is_set():
            signal.raise_signal(signal.SIGTERM)

    relay = asyncio.create_task(pass_on_an_early_signal())
    liveness = f"http://{args.bind}:{args.liveness_port}/healthz" if args.liveness_port else None
    try:
        await kopf.operator(
            standalone=True,
            clusterwide=watched.clusterwide,
            namespaces=watched.namespaces,
            liveness_endpoint=liveness,
            memo=kopf.Memo(scope=watched),
        )
    finally:
        relay.cancel()


def _json_names_the_rotation() -> None:
    """kopf's JSON lines carry every ``extra`` field; a rotation's name is written as ``name``.

    ``LogRecord`` reserves ``name`` for the logger's, so ``steplog`` passes it as
    ``steplog.NAME_FIELD``; kopf's JSON formatter (python-json-logger) renames it on output.
    The text format has no such field: its lines start ``namespace/name:``.
    """
    for handler in logging.getLogger().handlers:
        renames = getattr(handler.formatter, "rename_fields", None)
        if isinstance(renames, dict):
            renames[steplog.NAME_FIELD] = "name"


def _credentials_problem() -> str | None:
    """None when in-cluster credentials or a kubeconfig load; else one line saying what was looked for."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return None
    except config.ConfigException as error:
        in_cluster = f"no in-cluster credentials ({error})"
    kubeconfig = os.environ.get("KUBECONFIG")
    where = f"$KUBECONFIG={kubeconfig}" if kubeconfig else "~/.kube/config ($KUBECONFIG is unset)"
    try:
        config.load_kube_config()  # type: ignore[no-untyped-call]  # $KUBECONFIG (each file it lists), else ~/.kube/config
        return None
    except (config.ConfigException, OSError) as error:
        return f"cannot reach a cluster: {in_cluster}, and no usable kubeconfig at {where} ({error})"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        watched = scope.from_arguments(args, leader.default_namespace())
    except scope.ScopeError as error:
        parser.error(str(error))
    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(log_format=log_format)
    _json_names_the_rotation()
    if args.verbose:  # the operator's own decisions, not every HTTP request
        logging.getLogger("secretrotation").setLevel(logging.DEBUG)
    problem = _credentials_problem()
    if problem is not None:  # before any server starts: nothing would ever answer for a cluster
        print(f"secretrotation: {problem}", file=sys.stderr)
        return 1
    from secretrotation.adapters import handlers  # noqa: F401 - importing registers the kopf handlers

    logging.getLogger("secretrotation.scope").info("Acting in %s.", watched.describe())

    elector: leader.Elector | None = None
    if args.leader_elect:
        namespace = args.leader_election_namespace or leader.default_namespace()
        if not namespace:
            parser.error("--leader-elect needs --leader-election-namespace outside a pod")
        # The library logs every renewal and every look at a held Lease at INFO: every 2 s.
        logging.getLogger("leaderelection").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
        settings = leader.ElectionSettings(namespace, args.leader_election_id, leader.default_identity())
        elector = leader.Elector(settings)
    # SIGTERM and SIGINT set this until kopf handles them itself: a standby stops, a starting leader stops kopf.
    signalled = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signalled.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.bind)
    if elector is None:
        metrics.LEADER.set(1)
    elif not _stand_by(elector, signalled, args.bind, args.liveness_port):
        return 0
    else:
        logging.getLogger("secretrotation.leader").info("Leading: starting the operator.")
    try:
        if not signalled.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # as kopf.run
                asyncio.run(_operate(args, watched, signalled, on_signal))
    finally:
        if elector is not None:
            elector.release()  # kopf has stopped acting: hand the Lease to a standby at once
    return 0


if __name__ == "__main__":
    sys.exit(main())
