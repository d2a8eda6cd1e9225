"""ServiceAccount tokens as Kubernetes 1.24 and later hand them out, on the real API server.

No account gets a token Secret by itself; pods get bound tokens from the TokenRequest
API; the API server labels a legacy token Secret with the day it was last used, and
the legacy token cleaner (1.29+) invalidates the auto-generated ones nobody uses.
``make test`` runs these on 1.37 and ``.ci/run`` again on 1.31.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from kubetest import Kube, condition, container, deployment, raw
from kubetest.accounts import account_names, workloads_running_as
from kubetest.invariants import InvariantChecker
from kubetest.operator import OperatorProcess, apply_cluster_role, install_crd, rotation
from kubetest.rotations import at_revision, collection_blocked_at, create, request_rotation, wait_rotation
from secretrotation_dev.devcluster import binaries
from secretrotation_dev.devcluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
VERIFY = {"timeout": "3m", "stableFor": "1s"}
TOKEN_TYPE = "kubernetes.io/service-account-token"
LAST_USED = "kubernetes.io/legacy-token-last-used"
INVALID_SINCE = "kubernetes.io/legacy-token-invalid-since"
# What the API server records as the day legacy-token tracking began (kube-system).
TRACKING = ("kube-system", "kube-apiserver-legacy-service-account-token-tracking")


@pytest.fixture
def checked(kube: Kube, namespace: str) -> Iterator[None]:
    with InvariantChecker(kube, namespace):
        yield


def account_rotation(*, token_secret: bool = False, **extra: Any) -> Obj:
    account = {"name": "deployer", "tokenSecret": token_secret}
    return rotation("deployer", serviceAccount=account, verify=VERIFY, **extra)


def who_am_i(kubeconfig: Path, token: str) -> str:
    """The user name the API server authenticates ``token`` as (a SelfSubjectReview)."""
    settings = yaml.safe_load(kubeconfig.read_text())
    settings["users"] = [{"name": "admin", "user": {"token": token}}]
    api = config.new_client_from_config_dict(settings)
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    answer = raw(client.AuthenticationV1Api(api).create_self_subject_review, review)
    name: str = answer["status"]["userInfo"]["username"]
    return name


def token_secrets(kube: Kube, namespace: str) -> set[str]:
    items = raw(kube.core.list_namespaced_secret, namespace)["items"]
    return {s["metadata"]["name"] for s in items if s["type"] == TOKEN_TYPE}


def secret_token(kube: Kube, namespace: str, name: str) -> str:
    return base64.b64decode(raw(kube.core.read_namespaced_secret, name, namespace)["data"]["token"]).decode()


def test_a_new_account_version_gets_no_token_secret_and_its_pods_get_bound_tokens(
    kube: Kube, kubeconfig: Path, namespace: str, operator: OperatorProcess, checked: None
) -> None:
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "deployer"}})
    workloads_running_as(kube, namespace, "deployer")
    create(kube, namespace, account_rotation(retain=0))

    wait_rotation(kube, namespace, "deployer", at_revision(1), "revision 1")

    assert not raw(kube.core.read_namespaced_service_account, "deployer-v1", namespace).get("secrets")
    assert token_secrets(kube, namespace) == set(), "no token Secret is made without tokenSecret: true"
    pods = raw(kube.core.list_namespaced_pod, namespace, label_selector="app=api")["items"]
    assert pods and all(p["spec"]["serviceAccountName"] == "deployer-v1" for p in pods), pods
    bound = [
        source["serviceAccountToken"]
        for pod in pods
        for volume in pod["spec"]["volumes"]
        for source in (volume.get("projected") or {}).get("sources") or []
        if "serviceAccountToken" in source
    ]
    assert len(bound) == len(pods), "each pod mounts a bound token (the ServiceAccount admission plugin)"
    request = {"spec": {"expirationSeconds": 600}}
    granted = raw(kube.core.create_namespaced_service_account_token, "deployer-v1", namespace, request)
    assert who_am_i(kubeconfig, granted["status"]["token"]) == f"system:serviceaccount:{namespace}:deployer-v1"


def test_a_token_secret_used_on_the_switch_day_blocks_collection_of_its_account(
    kube: Kube, kubeconfig: Path, namespace: str, operator: OperatorProcess, checked: None
) -> None:
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "deployer"}})
    create(kube, namespace, account_rotation(retain=0, token_secret=True))
    wait_rotation(kube, namespace, "deployer", at_revision(1), "revision 1")

    # A consumer outside the cluster uses the long-lived token: the API server labels its Secret.
    legacy = secret_token(kube, namespace, "deployer-v1-token")
    assert who_am_i(kubeconfig, legacy) == f"system:serviceaccount:{namespace}:deployer-v1"
    labelled = kube.wait_one(
        kube.core.list_namespaced_secret, "deployer-v1-token", lambda s: LAST_USED in s["metadata"].get("labels", {}),
        namespace=namespace, what=f"the API server's {LAST_USED} label",
    )  # fmt: skip
    assert labelled["metadata"]["labels"][LAST_USED] == datetime.now(UTC).date().isoformat()

    request_rotation(kube, namespace, "deployer", "2")
    blocked = wait_rotation(kube, namespace, "deployer", collection_blocked_at(2), "collection of deployer-v1 blocked")

    message = condition(blocked, "GarbageCollected")["message"]
    assert "deployer-v1" in message and "used after the switch" in message, message
    assert "deployer-v1" in account_names(kube, namespace)
    assert {"deployer-v1-token", "deployer-v2-token"} <= token_secrets(kube, namespace)


# --- the legacy token cleaner ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cleaning_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A private control plane whose cleaner invalidates legacy tokens unused for a second.

    The cleaner runs when the controller manager starts and then daily, and only once the API
    server has tracked token use for longer than the period; so the test backdates the tracking
    record and restarts the controller manager to make it run.
    """
    plane = ControlPlane(
        tmp_path_factory.mktemp("cleaning-cluster"),
        binaries.find(),
        controller_manager_args=("--legacy-service-account-token-clean-up-period=1s",),
    )
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def test_the_legacy_token_cleaner_and_token_secret_leave_each_other_alone(
    cleaning_plane: ControlPlane, tmp_path: Path
) -> None:
    kube = Kube(config.new_client_from_config(config_file=str(cleaning_plane.kubeconfig)))
    install_crd(kube)
    apply_cluster_role(kube)
    namespace = "cleaned"
    kube.core.create_namespace({"metadata": {"name": namespace}})
    kube.wait_one(kube.core.list_namespaced_service_account, "default", lambda _: True, namespace=namespace)
    # An account from before 1.24: it lists its auto-generated token, which nothing uses. The account
    # comes first: the token controller deletes a token Secret whose account does not exist.
    kube.core.create_namespaced_service_account(namespace, {
        "metadata": {"name": "deployer"}, "secrets": [{"name": "deployer-token-q4x9z"}],
    })  # fmt: skip
    kube.core.create_namespaced_secret(namespace, {
        "metadata": {"name": "deployer-token-q4x9z", "annotations": {"kubernetes.io/service-account.name": "deployer"}},
        "type": TOKEN_TYPE,
    })  # fmt: skip
    kube.apps.create_namespaced_deployment(
        namespace, deployment("api", {"serviceAccountName": "deployer", "containers": [container()]})
    )
    operator = OperatorProcess(cleaning_plane.kubeconfig, namespace, tmp_path / "operator.log")
    operator.start()
    try:
        create(kube, namespace, account_rotation(token_secret=True))
        done = wait_rotation(kube, namespace, "deployer", at_revision(1), "revision 1")
        before = raw(kube.core.read_namespaced_secret, "deployer-v1-token", namespace)["metadata"]

        backdated = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
        kube.core.patch_namespaced_config_map(TRACKING[1], TRACKING[0], {"data": {"since": backdated}})
        cleaning_plane.restart("kube-controller-manager")
        kube.wait_one(
            kube.core.list_namespaced_secret, "deployer-token-q4x9z",
            lambda s: INVALID_SINCE in s["metadata"].get("labels", {}),
            namespace=namespace, what="the cleaner's mark on the unused auto-generated token", timeout=120,
        )  # fmt: skip

        # The cleaner has judged every token Secret in the pass that marked that one.
        after = raw(kube.core.read_namespaced_secret, "deployer-v1-token", namespace)["metadata"]
        assert INVALID_SINCE not in after.get("labels", {}), "the cleaner took the operator's token for an orphan"
        assert after["resourceVersion"] == before["resourceVersion"], "the operator's token Secret was touched"
        settled = raw(kube.custom.get_namespaced_custom_object, "rotation.sre.dev", "v1alpha1", namespace,
                      "secretrotations", "deployer")  # fmt: skip
        assert settled["status"]["revision"] == done["status"]["revision"], "the operator rotated again"
        assert condition(settled, "Ready")["status"] == "True", settled["status"]
        assert "deployer-v1" in account_names(kube, namespace)
    finally:
        operator.stop()
        with contextlib.suppress(Exception):
            kube.core.delete_namespace(namespace)
