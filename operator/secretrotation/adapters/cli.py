"""``secretrotation run``: start the operator.

    secretrotation run --namespace shop --namespace billing
    secretrotation run --all-namespaces --metrics-port 8080 --liveness-port 8081 --log-format json

Runs standalone (no kopf peering): deploy one replica with the Recreate
strategy. Every step is resumable from status, so a restart loses nothing.
"""

from __future__ import annotations

import argparse
import sys

import kopf
from prometheus_client import start_http_server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="secretrotation", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group(required=True)
    scope.add_argument("-n", "--namespace", action="append", dest="namespaces", help="watch this namespace")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument("--metrics-port", type=int, default=8080, help="serve /metrics here (0: off)")
    run.add_argument("--liveness-port", type=int, default=8081, help="serve /healthz here (0: off)")
    run.add_argument("--bind", default="0.0.0.0", help="address for the metrics and liveness servers")
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("--verbose", action="store_true", help="log every step (never values)")
    run.add_argument(
        "--bind-cluster-roles",
        action="store_true",
        help="also add new ServiceAccount versions to ClusterRoleBindings that name the account in use",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=args.verbose, log_format=log_format)
    from secretrotation.adapters import handlers

    handlers.OPTIONS.cluster_role_bindings = args.bind_cluster_roles

    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.bind)
    liveness = f"http://{args.bind}:{args.liveness_port}/healthz" if args.liveness_port else None
    kopf.run(
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=args.namespaces or (),
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
