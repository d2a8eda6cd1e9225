"""The Helm chart (deploy/chart/secretrotation) and the kustomize overlays (deploy/kustomize).

deploy/*.yaml and crds/ stay the single source of what is installed. The chart and the
kustomize base ship byte-for-byte copies of the files they cannot reach (helm reads nothing
outside the chart, kustomize nothing outside its root), and the tests below pin every copy, then
render the chart and both overlays and compare them with deploy/, object by object.

helm and kubectl are built from Go modules and cached (``binaries.helm()``, ``binaries.find()``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from secretrotation_dev.devcluster import binaries

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy/chart/secretrotation"
KUSTOMIZE = REPO / "deploy/kustomize"
RELEASE, RELEASE_NAMESPACE = "secretrotation", "secretrotation-system"
KUBE_VERSION = "1.37.0"  # the chart needs 1.31 or later; `helm template` assumes 1.20 unless told
# Labels the chart puts on everything, which deploy/ does not carry.
CHART_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)

# A copy in the chart or the kustomize base -> its source. helm and kustomize read only files
# under their own root, so these are copies; refresh one with `cp SOURCE COPY`.
COPIES = {
    CHART / "files/crd.yaml": REPO / "crds/secretrotation.yaml",
    CHART / "files/policy-authors.yaml": REPO / "deploy/policy-authors.yaml",
    CHART / "files/policy-operator.yaml": REPO / "deploy/policy-operator.yaml",
    KUSTOMIZE / "base/crd.yaml": REPO / "crds/secretrotation.yaml",
    **{KUSTOMIZE / "base" / name: REPO / "deploy" / name
       for name in ("rbac.yaml", "rbac-user-roles.yaml", "policy-authors.yaml", "policy-operator.yaml",
                    "operator.yaml")},
    KUSTOMIZE / "overlays/namespaced/rbac-namespace.yaml": REPO / "deploy/rbac-namespace.yaml",
}  # fmt: skip
# Another change owns deploy/monitoring/; until its files exist, the chart ships placeholders.
MONITORING_COPIES = {
    CHART / "files/prometheusrule.yaml": REPO / "deploy/monitoring/prometheusrule.yaml",
    CHART / "files/dashboard.json": REPO / "deploy/monitoring/dashboard.json",
}
# What deploy/ installs in each mode (kustomize's overlays and the chart must install the same).
DEPLOY_FILES = {
    "namespaced": ["crds/secretrotation.yaml", "deploy/rbac.yaml", "deploy/rbac-user-roles.yaml",
                   "deploy/policy-authors.yaml", "deploy/policy-operator.yaml", "deploy/operator.yaml",
                   "deploy/rbac-namespace.yaml"],
    "cluster-wide": ["crds/secretrotation.yaml", "deploy/rbac.yaml", "deploy/rbac-user-roles.yaml",
                     "deploy/policy-authors.yaml", "deploy/policy-operator.yaml", "deploy/operator-clusterwide.yaml"],
}  # fmt: skip
# The chart's values for the same install as each overlay (deploy/operator.yaml acts in `shop`).
CHART_VALUES_OF_OVERLAY: dict[str, Obj] = {"namespaced": {"namespaces": ["shop"]}, "cluster-wide": {"scope": "cluster"}}


@pytest.fixture(scope="session")
def helm() -> Path:
    return binaries.helm()


@pytest.fixture(scope="session")
def kubectl() -> Path:
    found = binaries.find().kubectl
    assert found, "kubectl is built with the control plane: python -m secretrotation_dev.devcluster provision"
    return found


def run(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def parse(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def template(helm: Path, tmp_path: Path, values: Obj | None = None, *, check: bool = True,
             release: str = RELEASE) -> subprocess.CompletedProcess[str]:  # fmt: skip
    path = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(values or {}))
    return run(helm, "template", release, CHART, "--namespace", RELEASE_NAMESPACE,
               "--kube-version", KUBE_VERSION, "--values", path, check=check)  # fmt: skip


def render(helm: Path, tmp_path: Path, values: Obj | None = None, *, release: str = RELEASE) -> list[Obj]:
    return parse(template(helm, tmp_path, values, release=release).stdout)


def by_kind(docs: Iterable[Obj], kind: str) -> list[Obj]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: Iterable[Obj], kind: str, name: str | None = None) -> Obj:
    found = [doc for doc in by_kind(docs, kind) if name is None or doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def operator_container(docs: Iterable[Obj]) -> Obj:
    [container] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def kinds_and_names(docs: Iterable[Obj]) -> set[tuple[str, str, str]]:
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in docs}


# --- Lint and copies -------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_chart_passes_helm_lint(helm: Path, strict: bool) -> None:
    result = run(helm, "lint", CHART, *(["--strict"] if strict else []))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_chart_app_version_is_the_operators_version() -> None:
    project = (REPO / "pyproject.toml").read_text()
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert f'version = "{chart["appVersion"]}"' in project


@pytest.mark.parametrize("copy", sorted(COPIES), ids=lambda p: str(p.relative_to(REPO)))
def test_every_copy_equals_its_source_in_deploy(copy: Path) -> None:
    source = COPIES[copy]
    assert copy.read_bytes() == source.read_bytes(), (
        f"{copy.relative_to(REPO)} differs from {source.relative_to(REPO)}: cp {source.relative_to(REPO)} "
        f"{copy.relative_to(REPO)}"
    )


@pytest.mark.parametrize("copy", sorted(MONITORING_COPIES), ids=lambda p: p.name)
def test_monitoring_files_equal_deploy_monitoring(copy: Path) -> None:
    source = MONITORING_COPIES[copy]
    if not source.exists():
        pytest.skip(f"{source.relative_to(REPO)} does not exist yet: the chart ships a placeholder")
    assert copy.read_bytes() == source.read_bytes(), f"cp {source.relative_to(REPO)} {copy.relative_to(REPO)}"


# --- Rendering: defaults and each option -------------------------------------------------------


def test_defaults_install_the_namespaced_operator_in_the_release_namespace(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path)
    assert kinds_and_names(docs) == {
        ("CustomResourceDefinition", "", "secretrotations.rotation.sre.dev"),
        ("ServiceAccount", RELEASE_NAMESPACE, "secretrotation"),
        ("ClusterRole", "", "secretrotation"),
        ("ClusterRole", "", "secretrotation-edit"),
        ("ClusterRole", "", "secretrotation-view"),
        ("RoleBinding", RELEASE_NAMESPACE, "secretrotation"),
        ("Service", RELEASE_NAMESPACE, "secretrotation-metrics"),
        ("Deployment", RELEASE_NAMESPACE, "secretrotation"),
        ("ValidatingAdmissionPolicy", "", "secretrotation-authors"),
        ("ValidatingAdmissionPolicyBinding", "", "secretrotation-authors"),
        ("ValidatingAdmissionPolicy", "", "secretrotation-operator"),
        ("ValidatingAdmissionPolicyBinding", "", "secretrotation-operator"),
    }
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = operator_container(docs)
    assert container["image"] == "secretrotation:0.1.0"
    assert container["args"] == [
        "run", f"--namespace={RELEASE_NAMESPACE}", "--log-format=json", "--metrics-port=8080", "--liveness-port=8081",
    ]  # fmt: skip
    assert not by_kind(docs, "ClusterRoleBinding"), "a namespaced install grants nothing cluster-wide"
    crd = one(docs, "CustomResourceDefinition")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["spec"] == yaml.safe_load((REPO / "crds/secretrotation.yaml").read_text())["spec"]


def test_namespaced_install_binds_the_cluster_role_in_each_listed_namespace(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"namespaces": ["shop", "billing"]})
    bindings = by_kind(docs, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {"shop", "billing"}
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": "secretrotation"}  # fmt: skip
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "secretrotation",
                                        "namespace": RELEASE_NAMESPACE}]  # fmt: skip
    assert operator_container(docs)["args"][1:3] == ["--namespace=shop", "--namespace=billing"]


def test_cluster_scope_binds_everywhere_and_refuses_writes_in_excluded_namespaces(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"scope": "cluster", "excludeNamespaces": ["payments"]})
    assert not by_kind(docs, "RoleBinding")
    binding = one(docs, "ClusterRoleBinding", "secretrotation")
    assert binding["roleRef"]["name"] == "secretrotation"
    assert binding["subjects"][0]["namespace"] == RELEASE_NAMESPACE
    assert operator_container(docs)["args"][:3] == ["run", "--all-namespaces", "--exclude-namespace=payments"]
    exclusion = one(docs, "ValidatingAdmissionPolicyBinding", "secretrotation-operator-excluded-namespaces")
    [expression] = exclusion["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert expression["values"] == ["kube-system", RELEASE_NAMESPACE, "payments"]


def test_leader_election_runs_two_replicas_rolling_with_the_lease_role(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"replicas": 2, "leaderElection": {"enabled": True}})
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}  # fmt: skip
    assert operator_container(docs)["args"][-2:] == ["--leader-elect", "--leader-election-id=secretrotation"]
    role = one(docs, "Role", "secretrotation-leader-election")
    assert role["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert role["rules"][1]["resourceNames"] == ["secretrotation"], "get/update only the Lease named by the id"
    assert one(docs, "RoleBinding", "secretrotation-leader-election")["roleRef"]["kind"] == "Role"
    deploy_role = one(parse((REPO / "deploy/rbac-leader-election.yaml").read_text()), "Role")
    assert role["rules"] == deploy_role["rules"]


def test_monitoring_toggles_render_monitor_rules_and_dashboard(helm: Path, tmp_path: Path) -> None:
    values = {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        "monitoring": {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True, "namespace": "grafana"}},
    }
    docs = render(helm, tmp_path, values)
    monitor = one(docs, "ServiceMonitor", "secretrotation")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    service = one(docs, "Service", "secretrotation-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True, "else namespace becomes exported_namespace"
    rule = one(docs, "PrometheusRule", "secretrotation")
    shipped = yaml.safe_load((CHART / "files/prometheusrule.yaml").read_text())
    assert rule["spec"] == shipped["spec"]
    dashboard = one(docs, "ConfigMap", "secretrotation-dashboard")
    assert dashboard["metadata"]["namespace"] == "grafana"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped_dashboard = json.loads((CHART / "files/dashboard.json").read_text())
    assert json.loads(dashboard["data"]["secretrotation.json"]) == shipped_dashboard

    pod_monitor = render(helm, tmp_path, {"metrics": {"podMonitor": {"enabled": True}}})
    endpoint = one(pod_monitor, "PodMonitor")["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True
    both = {"metrics": {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}}}
    assert "enable one of them" in template(helm, tmp_path, both, check=False).stderr


def test_crds_disabled_or_not_kept(helm: Path, tmp_path: Path) -> None:
    assert not by_kind(render(helm, tmp_path, {"crds": {"enabled": False, "keep": True}}), "CustomResourceDefinition")
    crd = one(render(helm, tmp_path, {"crds": {"enabled": True, "keep": False}}), "CustomResourceDefinition")
    assert not crd["metadata"].get("annotations")


def test_network_policy_allows_the_api_server_dns_and_metrics_only(helm: Path, tmp_path: Path) -> None:
    values = {"networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.0.0.1/32"]}}}
    policy = one(render(helm, tmp_path, values), "NetworkPolicy", "secretrotation")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "secretrotation",
                                                  "app.kubernetes.io/instance": RELEASE}  # fmt: skip
    assert spec["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    api, dns = spec["egress"]
    assert api == {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}],
                   "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]}  # fmt: skip
    assert {p["port"] for p in dns["ports"]} == {53}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}


def test_image_by_digest_ignores_the_tag(helm: Path, tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    values = {"image": {"repository": "registry.example/secretrotation", "tag": "9.9", "digest": digest}}
    assert operator_container(render(helm, tmp_path, values))["image"] == f"registry.example/secretrotation@{digest}"
    tagged = {"image": {"repository": "registry.example/secretrotation", "tag": "9.9"}}
    assert operator_container(render(helm, tmp_path, tagged))["image"] == "registry.example/secretrotation:9.9"


def test_pod_placement_and_metadata_values_reach_the_pod(helm: Path, tmp_path: Path) -> None:
    values = {
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "ops", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
        "podAnnotations": {"a": "1"},
        "podLabels": {"team": "sre"},
        "logFormat": "text",
    }
    deployment = one(render(helm, tmp_path, values), "Deployment")
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"a": "1"}
    assert pod["metadata"]["labels"]["team"] == "sre"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    for key in ("priorityClassName", "nodeSelector", "tolerations", "affinity"):
        assert pod["spec"][key] == values[key]
    assert "--log-format=text" in pod["spec"]["containers"][0]["args"]


def test_policies_can_be_disabled_one_by_one(helm: Path, tmp_path: Path) -> None:
    values: Obj = {"policies": {"authors": {"enabled": False}, "operator": {"enabled": True}}}
    names = {d["metadata"]["name"] for d in render(helm, tmp_path, values) if "Policy" in d["kind"]}
    assert names == {"secretrotation-operator"}
    values = {"scope": "cluster", "policies": {"authors": {"enabled": True}, "operator": {"enabled": False}}}
    names = {d["metadata"]["name"] for d in render(helm, tmp_path, values) if "Policy" in d["kind"]}
    assert names == {"secretrotation-authors"}, "the exclusions policy is the operator's self-restraint too"


def test_operator_policy_matches_the_releases_service_account(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, release="edge")
    policy = one(docs, "ValidatingAdmissionPolicy", "edge-secretrotation-operator")
    [condition] = policy["spec"]["matchConditions"]
    assert condition["expression"] == (
        f"request.userInfo.username == 'system:serviceaccount:{RELEASE_NAMESPACE}:edge-secretrotation'"
    )
    assert one(docs, "ServiceAccount")["metadata"]["name"] == "edge-secretrotation"
    binding = one(docs, "ValidatingAdmissionPolicyBinding", "edge-secretrotation-operator")
    assert binding["spec"]["policyName"] == "edge-secretrotation-operator"
    assert {d["metadata"]["name"] for d in by_kind(docs, "ClusterRole")} == {
        "edge-secretrotation", "edge-secretrotation-edit", "edge-secretrotation-view",
    }, "cluster-scoped names carry the release, so two releases never share one"  # fmt: skip


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"scope": "everywhere"}, "scope"),
        ({"replicas": 2}, "replicas"),
        ({"scope": "cluster", "namespaces": ["shop"]}, "namespaces"),
        ({"excludeNamespaces": ["payments"]}, "excludeNamespaces"),
        ({"namespaces": ["Shop_*"]}, "namespaces"),
        ({"image": {"digest": "latest"}}, "digest"),
        ({"logFormat": "xml"}, "logFormat"),
        ({"watchNamespace": "shop"}, "watchNamespace"),
    ],
    ids=["scope", "replicas-without-election", "namespaces-cluster", "exclude-namespaced", "namespace-name",
         "digest", "log-format", "unknown-key"],
)  # fmt: skip
def test_schema_refuses_bad_values(helm: Path, tmp_path: Path, values: Obj, complaint: str) -> None:
    result = template(helm, tmp_path, values, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


# --- The chart, the overlays and deploy/ install the same objects ----------------------------


def deploy_objects(mode: str) -> list[Obj]:
    return [doc for path in DEPLOY_FILES[mode] for doc in parse((REPO / path).read_text())]


def kustomize(kubectl: Path, mode: str) -> list[Obj]:
    return parse(run(kubectl, "kustomize", KUSTOMIZE / "overlays" / mode).stdout)


def _without_chart_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (labels or {}).items() if k not in CHART_LABELS}


def normalised(docs: Iterable[Obj]) -> Iterator[tuple[tuple[str, str, str], Obj]]:
    """Each object keyed by kind, namespace and name, without what only the chart adds (each a
    justified difference):
    - the chart's labels (helm.sh/chart, app.kubernetes.io/name, instance, version, managed-by; deploy/
      labels only its Deployment, by name), also in
      the Deployment's selector and pod template (two releases must not select each other's pods);
    - the CRD's helm.sh/resource-policy annotation (crds.keep; tested on its own above);
    - the container's explicit imagePullPolicy (IfNotPresent, the API server's default for a tag);
    - the release namespace, which a chart does not create (`helm install --create-namespace`);
    - the metrics Service, which deploy/ does not ship.
    """
    for doc in docs:
        if doc["kind"] == "Namespace" or (doc["kind"] == "Service" and doc["metadata"]["name"].endswith("-metrics")):
            continue
        doc = json.loads(json.dumps(doc))
        meta = doc["metadata"]
        for holder in (meta, *_pod_template_and_selector(doc)):
            labels = _without_chart_labels(holder.get("labels") or holder.get("matchLabels"))
            key = "matchLabels" if "matchLabels" in holder else "labels"
            holder.pop(key, None)
            if labels:
                holder[key] = labels
        annotations = {k: v for k, v in (meta.pop("annotations", None) or {}).items() if k != "helm.sh/resource-policy"}
        if annotations:
            meta["annotations"] = annotations
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            container.pop("imagePullPolicy", None)
        yield (doc["kind"], meta.get("namespace", ""), meta["name"]), doc


def _pod_template_and_selector(doc: Obj) -> list[Obj]:
    if doc["kind"] != "Deployment":
        return []
    return [doc["spec"]["selector"], doc["spec"]["template"]["metadata"]]


def assert_same_objects(ours: Iterable[Obj], theirs: Iterable[Obj], what: str) -> None:
    mine, other = dict(normalised(ours)), dict(normalised(theirs))
    assert sorted(mine) == sorted(other), f"{what}: different objects"
    for key, obj in mine.items():
        assert obj == other[key], f"{what}: {key} differs"


@pytest.mark.parametrize("mode", sorted(DEPLOY_FILES))
def test_kustomize_overlay_installs_what_deploy_ships(kubectl: Path, mode: str) -> None:
    assert_same_objects(kustomize(kubectl, mode), deploy_objects(mode), f"overlays/{mode} vs deploy/")


@pytest.mark.parametrize("mode", sorted(DEPLOY_FILES))
def test_chart_installs_what_the_kustomize_overlay_installs(helm: Path, kubectl: Path, tmp_path: Path,
                                                            mode: str) -> None:  # fmt: skip
    chart = render(helm, tmp_path, CHART_VALUES_OF_OVERLAY[mode])
    assert_same_objects(chart, kustomize(kubectl, mode), f"chart vs overlays/{mode}")
