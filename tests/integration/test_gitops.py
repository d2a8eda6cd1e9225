"""GitOps tools living with the operator's switches: the two recipes in the README, each applied as the tool would.

Git's manifest names the Secret ``db``; the operator switches the Deployment to ``db-v1``
by server-side apply as field manager ``secretrotation``. A sync is simulated by
server-side applying Git's manifest as the tool's field manager:

- Argo CD, with ``ignoreDifferences.managedFieldsManagers: [secretrotation]`` and
  ``RespectIgnoreDifferences=true``, leaves out of its apply the fields that manager owns;
- Flux, with ``kustomize.toolkit.fluxcd.io/ssa: IfNotPresent``, does not apply an object that exists;
- a tool without either forces Git's names back, and a rotation in flight fails with
  ``TargetChangedExternally`` (never promoting a version nothing uses).
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from kubetest import Kube, condition, container, deployment, raw, secret
from kubetest.operator import OperatorProcess
from kubetest.rotations import at_revision, create, db_rotation, template_secrets, wait_rotation
from secretrotation.shell.cluster import APPLY_PATCH

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
ARGOCD = "argocd-controller"
FLUX = "kustomize-controller"
FLUX_SSA = "kustomize.toolkit.fluxcd.io/ssa"


def git_manifest(**annotations: str) -> Obj:
    """The Deployment as Git has it: ``api`` reading key ``password`` of Secret ``db``."""
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    manifest = deployment("api", {"containers": [container(env=env)]})
    if annotations:
        manifest["metadata"]["annotations"] = dict(annotations)
    return manifest


def server_side_apply(kube: Kube, namespace: str, manifest: Obj, manager: str) -> Obj:
    """``kubectl apply --server-side --force-conflicts --field-manager <manager>``, as both tools apply."""
    answer: Obj = raw(
        kube.apps.patch_namespaced_deployment, manifest["metadata"]["name"], namespace, manifest,
        _content_type=APPLY_PATCH, field_manager=manager, force=True,
    )  # fmt: skip
    return answer


def without_fields_owned_by(manifest: Obj, live: Obj, manager: str) -> Obj:
    """Git's manifest less every field ``manager`` owns on ``live``: what Argo CD applies with
    ``managedFieldsManagers`` ignored and ``RespectIgnoreDifferences=true``."""
    owned: Obj = {}
    for entry in live["metadata"].get("managedFields") or []:
        if entry["manager"] == manager and not entry.get("subresource"):
            owned = _union(owned, entry.get("fieldsV1") or {})
    pruned = copy.deepcopy(manifest)
    _prune(pruned, owned)
    return pruned


def _union(a: Obj, b: Obj) -> Obj:
    merged = copy.deepcopy(a)
    for key, value in b.items():
        merged[key] = _union(merged.get(key) or {}, value)
    return merged


def _prune(node: Any, owned: Obj, keys: frozenset[str] = frozenset()) -> None:
    """Remove from ``node`` the fields ``owned`` (a fieldsV1 set) names, never a list item's key."""
    for token, children in owned.items():
        if token.startswith("f:") and isinstance(node, dict) and token[2:] in node:
            name = token[2:]
            value = node[name]
            if any(t.startswith(("f:", "k:")) for t in children) and isinstance(value, (dict, list)):
                _prune(value, children)
                if not value:
                    del node[name]
            elif name not in keys:
                del node[name]  # a leaf, or an atomic list or map: owned whole
        elif token.startswith("k:") and isinstance(node, list):
            key = json.loads(token[2:])
            for item in node:
                if all(item.get(k) == v for k, v in key.items()):
                    _prune(item, children, frozenset(key))


def _live(kube: Kube, namespace: str) -> Obj:
    live: Obj = raw(kube.apps.read_namespaced_deployment, "api", namespace)
    return live


def _verifying(kube: Kube, namespace: str, **annotations: str) -> None:
    """Git's Deployment synced, and a rotation of ``db`` held in Verifying on ``db-v1`` for a while (stableFor)."""
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    server_side_apply(kube, namespace, git_manifest(**annotations), ARGOCD if not annotations else FLUX)
    verify = {"timeout": "3m", "stableFor": "20s"}
    create(kube, namespace, db_rotation(generate=[{"key": "password"}], verify=verify))
    wait_rotation(kube, namespace, "db", lambda o: (o.get("status") or {}).get("phase") == "Verifying", "Verifying")
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}


def _still_ready_at(kube: Kube, namespace: str, revision: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        wait_rotation(kube, namespace, "db", at_revision(revision), f"still Ready at revision {revision}", timeout=5)
        time.sleep(1)


def test_an_argocd_sync_that_ignores_the_operators_fields_leaves_the_switch_and_the_rotation_ready(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _verifying(kube, namespace)
    live = _live(kube, namespace)
    owned = [e for e in live["metadata"]["managedFields"] if e["manager"] == "secretrotation"]
    assert [e["operation"] for e in owned] == ["Apply"], live["metadata"]["managedFields"]
    assert "f:secretKeyRef" in json.dumps(owned[0]["fieldsV1"]), "the operator owns the reference it switched"
    assert '"f:image"' not in json.dumps(owned[0]["fieldsV1"]), "and nothing else of the container"

    # A sync mid-rotation (Argo CD syncs on every change it sees), then after it.
    synced = server_side_apply(kube, namespace, without_fields_owned_by(git_manifest(), live, "secretrotation"), ARGOCD)
    assert "db-v1" in json.dumps(synced["spec"]["template"]) and '"db"' not in json.dumps(synced["spec"]["template"])
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 after the sync")
    server_side_apply(kube, namespace, without_fields_owned_by(git_manifest(), _live(kube, namespace),
                                                               "secretrotation"), ARGOCD)  # fmt: skip
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}
    _still_ready_at(kube, namespace, 1, seconds=5)

    # What Git changes still reaches the workload: a new image, beside the operator's reference.
    bumped = git_manifest()
    bumped["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.local/app:2"
    after = server_side_apply(
        kube, namespace, without_fields_owned_by(bumped, _live(kube, namespace), "secretrotation"), ARGOCD
    )
    [app] = after["spec"]["template"]["spec"]["containers"]
    assert app["image"] == "registry.local/app:2" and app["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "db-v1"


def test_a_flux_resync_with_ssa_if_not_present_leaves_the_switch_alone(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    manifest = git_manifest(**{FLUX_SSA: "IfNotPresent"})
    _verifying(kube, namespace, **{FLUX_SSA: "IfNotPresent"})

    def flux_sync() -> None:
        """Flux applies an object marked IfNotPresent only when it does not exist."""
        if not kube.apps.list_namespaced_deployment(namespace, field_selector="metadata.name=api").items:
            server_side_apply(kube, namespace, manifest, FLUX)

    flux_sync()
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 after the re-sync")
    flux_sync()
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}
    _still_ready_at(kube, namespace, 1, seconds=5)


@pytest.mark.parametrize("manager", [ARGOCD, FLUX])
def test_a_tool_that_forces_gits_names_back_mid_rotation_fails_it_as_target_changed_externally(
    kube: Kube, namespace: str, operator: OperatorProcess, manager: str
) -> None:
    _verifying(kube, namespace)

    # Argo CD without ignoreDifferences, or Flux without IfNotPresent: Git's manifest whole, with force.
    server_side_apply(kube, namespace, git_manifest(), manager)

    failed = wait_rotation(
        kube,
        namespace,
        "db",
        lambda o: (
            (condition(o, "Stalled") or {}).get("reason") == "TargetChangedExternally"
            and o["status"].get("phase") == "Idle"
        ),
        "Stalled TargetChangedExternally",
    )
    assert "Deployment api was changed by someone else" in condition(failed, "Stalled")["message"]  # type: ignore[index]
    assert "currentSecret" not in failed["status"], f"a version no target uses was promoted: {failed['status']}"
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db"}, "the operator fought the sync"
