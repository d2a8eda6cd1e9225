"""The e2e suite shares the integration fixtures; run.sh points them at a kind cluster."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["kubetest.fixtures"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not os.environ.get("SECRETROTATION_TEST_KUBECONFIG"):
        skip = pytest.mark.skip(reason="e2e needs a kind cluster: run `make e2e`")
        for item in items:
            item.add_marker(skip)
