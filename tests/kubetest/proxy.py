"""Fixtures (a pytest plugin): the operator behind a ``FaultProxy``, to inject faults and count its requests.

``proxied_operator`` mirrors the ``operator`` fixture (the ClusterRole bound in the
test's namespace, the operator's own ServiceAccount) but the process talks to the
API server through a proxy, and the test gets both: ``(process, proxy)``. The
proxy starts fault-free, so the operator starts cleanly; a test turns faults on
with ``proxy.set_faults(...)``. Faults are drawn from ``SECRETROTATION_FAULT_SEED``
when it is set, else from a random seed that is printed, so a failure can be replayed.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetest import Kube
from kubetest.operator import OperatorProcess
from kubetest.reach import bind_in_namespace
from secretrotation_dev.faultproxy import FaultProxy, Faults

# What test_faults.py and the fault benchmark inject: 10% errors, 3% lost write answers, watches cut every 2-8 s.
CHAOS = Faults(error_rate=0.10, lost_write_rate=0.03, watch_cut=(2.0, 8.0))


def fault_seed() -> int:
    seed = int(os.environ.get("SECRETROTATION_FAULT_SEED") or random.randrange(2**32))
    print(f"SECRETROTATION_FAULT_SEED={seed}")
    return seed


@contextlib.contextmanager
def proxy_for(
    kubeconfig: Path, folder: Path, *, seed: int | None = None, add_token: bool = False
) -> Iterator[tuple[FaultProxy, Path]]:
    """A running proxy in front of ``kubeconfig``'s API server, and a kubeconfig (same user) that goes through it.

    ``add_token``: the proxy adds the user's token to requests that carry none (kubectl sends
    no credentials over plain HTTP).
    """
    seed = fault_seed() if seed is None else seed
    proxy = FaultProxy.for_kubeconfig(kubeconfig, seed=seed, add_token=add_token)
    proxy.start()
    try:
        yield proxy, proxy.write_kubeconfig(kubeconfig, folder / f"proxied-{proxy.port}.kubeconfig")
    finally:
        proxy.stop()


@contextlib.contextmanager
def operator_behind_proxy(
    kube: Kube, namespace: str, operator_kubeconfig: Path, folder: Path, *, seed: int | None = None
) -> Iterator[tuple[OperatorProcess, FaultProxy]]:
    """The operator, watching ``namespace`` as its ServiceAccount, through a fresh proxy (faults off)."""
    bind_in_namespace(kube, namespace)
    with proxy_for(operator_kubeconfig, folder, seed=seed) as (proxy, proxied):
        process = OperatorProcess(proxied, namespace, folder / "operator.log")
        process.start()
        try:
            yield process, proxy
        finally:
            process.stop()


@pytest.fixture
def proxied_operator(
    kube: Kube, namespace: str, operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, FaultProxy]]:
    """The operator, watching this test's namespace, behind a ``FaultProxy``: ``(process, proxy)``."""
    with operator_behind_proxy(kube, namespace, operator_kubeconfig, tmp_path) as running:
        yield running


@pytest.fixture
def admin_proxy(kubeconfig: Path, tmp_path: Path) -> Iterator[tuple[FaultProxy, Path]]:
    """A proxy in front of the session's API server for the admin user: ``(proxy, kubeconfig through it)``.

    It adds the admin's token to requests without credentials, so kubectl works through it.
    """
    with proxy_for(kubeconfig, tmp_path, add_token=True) as running:
        yield running
