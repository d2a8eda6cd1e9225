"""A second simulated kubelet with its own named nodes: ``python extra_kubelet.py --kubeconfig K --node N ...``.

The session's kubelet registers ``sim-node-1``; the idle benchmark needs room for
thousands of pods (1000 per node), so it starts this beside it for a while.
"""

from __future__ import annotations

import argparse
import logging
from datetime import timedelta

from kubernetes import config

from secretrotation_dev.devcluster import kubelet, podsim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", action="append", required=True, help="a node to register (repeatable)")
    parser.add_argument("--readiness-delay", type=float, default=0.5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api = config.new_client_from_config(config_file=args.kubeconfig)
    simulator = podsim.PodSimulator(
        readiness_delay=timedelta(seconds=args.readiness_delay), crash_interval=timedelta(seconds=2)
    )
    kubelet.SimKubelet(api, args.node, simulator).run()


if __name__ == "__main__":
    main()
