"""The Helm chart on the local control plane: `helm install`, a rotation under the chart's RBAC
and admission policy, and `helm uninstall`, which leaves the CRD and every Secret version.

The chart's pod cannot run here (the simulated kubelet runs no images), so the operator runs
locally with a token of the chart's ServiceAccount, as the pod would: whatever it may do comes
from the chart's RoleBinding and is restrained by the chart's operator policy.

The CRD and the admission policies are cluster-scoped and shared by the whole test session:
- the CRD: the chart's is crds/secretrotation.yaml byte for byte (checked before installing), and
  `--take-ownership` lets the release adopt the one the session installed; crds.keep leaves it
  in place on uninstall, which is what this test proves;
- the operator policy is named after the release and matches only the release's ServiceAccount,
  so it touches no other test;
- the authors policy is disabled: it would judge every SecretRotation any concurrent test
  creates (tests/integration/test_author_policy.py tests the shipped one).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, eventually, raw, secret
from kubetest.operator import GROUP, PLURAL, REPO, VERSION, OperatorProcess, install_crd
from kubetest.reach import acting_as_operator, wait_refused
from kubetest.rotations import at_revision, consumer, create, db_rotation, request_rotation, secret_names, wait_rotation
from secretrotation_dev.devcluster import binaries

pytestmark = pytest.mark.integration

CHART = REPO / "deploy/chart/secretrotation"
CRD_NAME = "secretrotations.rotation.sre.dev"


class Helm:
    """The cached helm binary against the test cluster, with its own cache and config."""

    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.binary = binaries.helm()
        homes = {var: str(home / var.lower()) for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")}
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), **homes}

    def __call__(self, *args: str | Path) -> str:
        result = subprocess.run([str(self.binary), *map(str, args)], capture_output=True, text=True,
                                env=self.env, timeout=180)  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout


@pytest.fixture
def release(kube: Kube, kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[tuple[Helm, str, str]]:
    """The chart installed as a fresh release in a fresh namespace, acting in this test's namespace.

    Yields helm, the release's name and its namespace; uninstalls it (if the test did not) after.
    """
    assert (CHART / "files/crd.yaml").read_bytes() == (REPO / "crds/secretrotation.yaml").read_bytes(), (
        "the chart's CRD differs from crds/: installing it would change the CRD every test uses"
    )
    install_crd(kube)  # the session's CRD, as other tests install it; the release adopts it
    helm = Helm(kubeconfig, tmp_path / "helm")
    suffix = secrets.token_hex(3)
    name, home = f"chart-{suffix}", f"chart-install-{suffix}"
    values = {"namespaces": [namespace], "policies": {"authors": {"enabled": False}, "operator": {"enabled": True}}}
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    helm("install", name, CHART, "--namespace", home, "--create-namespace", "--take-ownership",
         "--values", values_file)  # fmt: skip
    try:
        yield helm, name, home
    finally:
        with contextlib.suppress(AssertionError):  # uninstalled by the test already
            helm("uninstall", name, "--namespace", home)
        with contextlib.suppress(ApiException):
            kube.core.delete_namespace(home)
        install_crd(kube)  # the CRD as the session had it, without the gone release's labels


def service_account_kubeconfig(kube: Kube, kubeconfig: Path, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig holding a bound token of ``namespace/account``, as its pod would get one."""
    granted = raw(kube.core.create_namespaced_service_account_token, account, namespace,
                  {"spec": {"expirationSeconds": 3600}})  # fmt: skip
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": granted["status"]["token"]}}]
    path.write_text(yaml.safe_dump(config))
    return path


def test_chart_install_rotates_under_its_rbac_and_uninstall_keeps_crd_and_versions(
    kube: Kube, kubeconfig: Path, namespace: str, release: tuple[Helm, str, str], tmp_path: Path
) -> None:
    helm, name, home = release
    fullname = f"{name}-secretrotation"
    # What the release installed where: the RoleBinding in the watched namespace, nothing cluster-wide.
    binding = raw(kube.rbac.read_namespaced_role_binding, fullname, namespace)
    assert binding["roleRef"]["name"] == fullname
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": fullname, "namespace": home}]
    crd = raw(kube.extensions.read_custom_resource_definition, CRD_NAME)
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == name, "the release owns the CRD"

    operator_config = service_account_kubeconfig(kube, kubeconfig, home, fullname, tmp_path / "operator-kubeconfig")
    as_operator = acting_as_operator(operator_config)
    wait_refused(
        lambda: as_operator.core.create_namespaced_secret(namespace, secret("probe", {"k": "v"}), dry_run="All"),
        f"{fullname}-operator",
        what="the chart's operator policy to refuse an unlabelled Secret",
    )

    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    consumer(kube, namespace, "api", "db")
    create(kube, namespace, db_rotation())
    operator = OperatorProcess(operator_config, namespace, tmp_path / "operator.log")
    operator.start()
    try:
        wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")
        request_rotation(kube, namespace, "db", "second")
        wait_rotation(kube, namespace, "db", at_revision(2), "revision 2 Ready")
    finally:
        operator.stop()
    assert "Forbidden" not in operator.logs(), "the chart's RBAC and policy refused the operator something"
    versions = secret_names(kube, namespace)
    assert versions == {"db", "db-v1", "db-v2"}

    helm("uninstall", name, "--namespace", home)
    kube.wait_gone(kube.rbac.list_namespaced_role_binding, fullname, namespace=namespace)
    with pytest.raises(ApiException) as gone:
        kube.core.read_namespaced_service_account(fullname, home)
    assert gone.value.status == 404
    # Kept: the CRD (helm.sh/resource-policy: keep), so the SecretRotation, and every Secret version.
    assert raw(kube.extensions.read_custom_resource_definition, CRD_NAME)["metadata"]["name"] == CRD_NAME
    kept = raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, "db")
    assert kept["status"]["currentSecret"] == "db-v2"
    eventually(lambda: secret_names(kube, namespace) == versions, timeout=5, what="every Secret version kept")
