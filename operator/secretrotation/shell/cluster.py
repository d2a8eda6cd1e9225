"""The only module that calls the Kubernetes API.

Observes one namespace for a step, performs the planner's actions and writes
status. Secrets are only ever fetched by name (the operator has no list or
watch on Secrets), and of a Secret only its key names leave this module:
values are read solely to copy ``from`` data into a new version.

Synchronous (the official client); the handlers run it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from secrets import token_hex
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from secretrotation.core import accounts, apply, names, objects, plan, world
from secretrotation.core import spec as model
from secretrotation.core.world import Fact, Needs
from secretrotation.shell.api import ResourceGone, StatusConflict, read, read_named, refusal, safe_api_error, write
from secretrotation.shell.cronjobs import CRON_FRESH_FOR, CronJobs
from secretrotation.shell.kubejson import raw, untyped
from secretrotation.shell.store import FRESH_FOR

JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # the body may be JSON: JSON is YAML


def _secret_state(name: str, secret: dict[str, Any] | None) -> world.SecretState | None:
    if secret is None:
        return None
    meta = secret["metadata"]
    return world.SecretState(
        name=name,
        labels=meta.get("labels") or {},
        keys=frozenset(secret.get("data") or {}),
        immutable=bool(secret.get("immutable")),
        type=secret.get("type", "Opaque"),
        resource_version=meta["resourceVersion"],
        annotations=meta.get("annotations") or {},
    )


def _items(call: Callable[..., Any], namespace: str, **kwargs: Any) -> tuple[dict[str, Any], ...]:
    return tuple(read(call, namespace, **kwargs)["items"])


class Cluster:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.authorization = client.AuthorizationV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.cron_jobs = CronJobs(api)
        self._created: dict[tuple[str, str], world.SecretState] = {}  # versions this process created

    # -- observing ------------------------------------------------------------------------

    def list_kinds(self, namespace: str, kinds: Iterable[str]) -> dict[str, tuple[tuple[dict[str, Any], ...], str]]:
        """One LIST per kind: the items, and the LIST's resourceVersion (for the store's resync)."""
        calls = {
            "Pod": self.core.list_namespaced_pod,
            "Deployment": self.apps.list_namespaced_deployment,
            "StatefulSet": self.apps.list_namespaced_stateful_set,
            "DaemonSet": self.apps.list_namespaced_daemon_set,
            "ReplicaSet": self.apps.list_namespaced_replica_set,
            "Job": self.batch.list_namespaced_job,
            "ServiceAccount": self.core.list_namespaced_service_account,
        }
        listed = {}
        for kind in kinds:
            answer = read(calls[kind], namespace)
            listed[kind] = (tuple(answer["items"]), str(answer["metadata"].get("resourceVersion") or ""))
        return listed

    def observe(
        self,
        resource: world.Resource,
        now: datetime,
        claims: dict[tuple[str, str], str],
        objects: world.NamespaceObjects,
        needs: Needs,
        *,
        fresh: bool,
        earlier: world.Observed | None = None,
    ) -> world.Observed:
        """What a step reads: the store's objects, plus what it asked for (``needs``), each fetched once.

        ``earlier`` is this step's previous observation: what it already fetched is kept, not fetched again.
        """
        namespace = resource.namespace
        got = earlier or world.Observed(
            now=now, objects=replace(objects, cron_jobs=None), secrets={}, service_accounts={},
            mount_failures=None, bindings=None, nonce=token_hex(8),
        )  # fmt: skip
        secrets = dict(got.secrets or {})
        for name in needs.secrets - secrets.keys():
            secrets[name] = self.secret_state(namespace, name)
        service_accounts = dict(got.service_accounts or {})
        for name in needs.accounts - service_accounts.keys():
            service_accounts[name] = self.account_state(namespace, name)
        cron_jobs = got.objects.cron_jobs
        if Fact.CRON_JOBS in needs.facts and cron_jobs is None:
            # Before a deletion (a fresh view), a LIST a few seconds old; for the untracked report, the window.
            cron_jobs = self.cron_jobs.listed(namespace, CRON_FRESH_FOR if fresh else FRESH_FOR)
        mount_failures = got.mount_failures
        if Fact.MOUNT_FAILURES in needs.facts and mount_failures is None:
            mount_failures = self._mount_failures(namespace)
        bindings, extendable = got.bindings, got.extendable_bindings
        if Fact.BINDINGS in needs.facts and bindings is None:
            bindings = self._bindings(namespace)
            extendable = self._extendable(namespace, bindings)
        return world.Observed(
            now=now,
            objects=replace(objects, cron_jobs=cron_jobs),
            secrets=secrets,
            mount_failures=mount_failures,
            claims=claims,
            service_accounts=service_accounts,
            bindings=bindings,
            extendable_bindings=extendable,
            nonce=got.nonce,
            fresh=fresh,
        )

    def account_state(self, namespace: str, name: str) -> world.AccountState | None:
        account = read_named(self.core.read_namespaced_service_account, name, namespace)
        if account is None:
            return None
        meta = account["metadata"]
        return world.AccountState(
            name=name,
            labels=meta.get("labels") or {},
            annotations=meta.get("annotations") or {},
            secrets=tuple(s["name"] for s in account.get("secrets") or [] if s.get("name")),
            image_pull_secrets=tuple(s["name"] for s in account.get("imagePullSecrets") or [] if s.get("name")),
            automount=account.get("automountServiceAccountToken"),
            resource_version=meta["resourceVersion"],
        )

    def _bindings(self, namespace: str) -> tuple[dict[str, Any], ...]:
        return tuple({**b, "kind": "RoleBinding"} for b in _items(self.rbac.list_namespaced_role_binding, namespace))

    def _extendable(self, namespace: str, bindings: tuple[dict[str, Any], ...]) -> frozenset[str]:
        """The consenting RoleBindings the operator may extend: patch on the binding and bind on its role.

        Two SelfSubjectAccessReviews per binding that carries the consent annotation; none for the others.
        """
        consenting = [b for b in bindings if accounts.consents(b)]
        return frozenset(
            b["metadata"]["name"]
            for b in consenting
            if self._may(namespace, "patch", "rolebindings", b["metadata"]["name"])
            and self._may(namespace, "bind", f"{b['roleRef']['kind'].lower()}s", b["roleRef"]["name"])
        )

    def _may(self, namespace: str, verb: str, resource: str, name: str) -> bool:
        attributes = {"namespace": namespace, "verb": verb, "group": "rbac.authorization.k8s.io",
                      "resource": resource, "name": name}  # fmt: skip
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": attributes}}  # fmt: skip
        answer = raw(self.authorization.create_self_subject_access_review, review)
        return bool(answer.get("status", {}).get("allowed"))

    def secret_state(self, namespace: str, name: str) -> world.SecretState | None:
        """What the operator keeps of a Secret: names and metadata, never values.

        A version this process created is answered from what its create returned, by its
        resourceVersion: its data cannot change (immutable), and a delete of it carries that
        resourceVersion, so a copy someone edited since fails the delete and is read again.
        """
        created = self._created.get((namespace, name))
        if created is not None:
            return created
        return _secret_state(name, read_named(self.core.read_namespaced_secret, name, namespace))

    def forget(self, namespace: str) -> None:
        """No rotation in the namespace is busy: the versions created there are read by name again."""
        self._created = {key: state for key, state in self._created.items() if key[0] != namespace}
        self.cron_jobs.forget(namespace)

    def _mount_failures(self, namespace: str) -> dict[str, datetime]:
        """Pod name -> when a FailedMount was first reported for it."""
        events = _items(self.core.list_namespaced_event, namespace, field_selector="reason=FailedMount")
        first: dict[str, datetime] = {}
        for event in events:
            pod = event.get("involvedObject", {}).get("name")
            when = objects.parse_time(event.get("firstTimestamp") or event.get("eventTime"))
            if pod and when and (pod not in first or when < first[pod]):
                first[pod] = when
        return first

    # -- acting ---------------------------------------------------------------------------------

    def perform(self, namespace: str, rotation: str, action: plan.Action) -> tuple[str, dict[str, Any]] | None:
        """Perform one action; the kind and object it wrote, when the store holds that kind."""
        if isinstance(action, plan.CreateVersion):
            self.create_version(namespace, rotation, action)
        elif isinstance(action, plan.PatchWorkload):
            return action.kind, self.patch_workload(namespace, action)
        elif isinstance(action, plan.DeletePod):
            self.delete_pod(namespace, action)
        elif isinstance(action, plan.DeleteSecret):
            self.delete_secret(namespace, action)
        elif isinstance(action, plan.CreateAccount):
            manifest = accounts.account_manifest(action.name, rotation, action.revision, action.source, action.nonce)
            created = self._create(self.core.create_namespaced_service_account, namespace, manifest)
            return ("ServiceAccount", created) if created else None
        elif isinstance(action, plan.CreateTokenSecret):
            manifest = accounts.token_secret_manifest(action.account, rotation, action.revision, action.nonce)
            self._create(self.core.create_namespaced_secret, namespace, manifest)
        elif isinstance(action, plan.PatchBinding):
            self.patch_binding(namespace, action)
        else:
            self.delete_account(namespace, action)
        return None

    def _create(self, create: Callable[..., Any], namespace: str, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when the name is taken (an earlier, interrupted step's, or not ours: the planner judges)."""
        try:
            return dict(write(create, namespace, manifest))
        except ApiException as error:
            if error.status != 409:
                name = manifest["metadata"]["name"]
                raise refusal(error, f"creating {manifest['kind']} {name}") from None
            return None

    def patch_binding(self, namespace: str, action: plan.PatchBinding) -> None:
        operations = [dict(op) for op in action.operations]
        try:
            write(self.rbac.patch_namespaced_role_binding, action.name, namespace, operations, _content_type=JSON_PATCH)
        except ApiException as error:
            raise refusal(error, f"patching {action.kind} {action.name}", patch=True) from None

    def create_version(self, namespace: str, rotation: str, action: plan.CreateVersion) -> None:
        spec = action.spec
        if spec.from_secret is not None:
            source = read(self.core.read_namespaced_secret, spec.from_secret, namespace)
            data = dict(source.get("data") or {})  # already base64, copied as is
            body: dict[str, Any] = {"data": data}
        else:
            body = {"stringData": {rule.key: model.generate_value(rule) for rule in spec.generate}}
        body.update(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": action.name,
                    "namespace": namespace,
                    "labels": names.version_labels(rotation, action.revision),
                    **({"annotations": {names.NONCE_ANNOTATION: action.nonce}} if action.nonce else {}),
                },
                "type": str(spec.secret_type),
                "immutable": True,
            }
        )
        try:
            created = write(self.core.create_namespaced_secret, namespace, untyped(body))
            state = _secret_state(action.name, created)
            if state is not None:
                self._created[(namespace, action.name)] = state
        except ApiException as error:
            if error.status != 409:  # already staged by an earlier attempt: the planner checks it
                values = [str(v) for v in (body.get("stringData") or body.get("data") or {}).values()]
                raise refusal(error, f"creating Secret {action.name}", values) from None

    def workload(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        """One Deployment, StatefulSet or DaemonSet by name, with its kind; None when it is gone."""
        get = {
            "Deployment": self.apps.read_namespaced_deployment,
            "StatefulSet": self.apps.read_namespaced_stateful_set,
            "DaemonSet": self.apps.read_namespaced_daemon_set,
        }[kind]
        found = read_named(get, name, namespace)
        return {**found, "kind": kind} if found is not None else None

    def version_exists(self, namespace: str, credential: str, name: str) -> bool:
        """Whether a Secret or ServiceAccount of that name exists (read by name)."""
        get = self.core.read_namespaced_secret if credential == "Secret" else self.core.read_namespaced_service_account
        return bool(name) and read_named(get, name, namespace) is not None

    def patch_workload(self, namespace: str, action: plan.PatchWorkload) -> dict[str, Any]:
        """Switch (or revert) a workload by server-side apply, or by JSON patch where apply cannot say it.

        ``force``: a reference the operator switches was set by someone else (kubectl,
        Helm, Argo CD's or Flux's manager), so without it every first switch would answer
        409 for the field it means to take over. The resourceVersion in the body keeps it
        to the exact object judged; taking ownership is what lets a GitOps tool see which
        fields are the operator's.
        """
        patch = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "StatefulSet": self.apps.patch_namespaced_stateful_set,
            "DaemonSet": self.apps.patch_namespaced_daemon_set,
        }[action.kind]
        try:
            if action.by_apply:
                body = action.apply_configuration()
                return dict(
                    write(patch, action.name, namespace, body, _content_type=APPLY_PATCH,
                          field_manager=apply.FIELD_MANAGER, force=True)
                )  # fmt: skip
            operations = action.operations()
            return dict(write(patch, action.name, namespace, operations, _content_type=JSON_PATCH,
                              field_manager=apply.FIELD_MANAGER))  # fmt: skip
        except ApiException as error:
            # A 422 on a JSON patch is a failed test (a conflict); on an apply, a refusal to read.
            raise refusal(error, f"patching {action.kind} {action.name}", patch=not action.by_apply) from None

    def delete_pod(self, namespace: str, action: plan.DeletePod) -> None:
        self._delete(
            self.core.delete_namespaced_pod, "Pod", action.name, namespace, client.V1Preconditions(uid=action.uid)
        )

    def delete_secret(self, namespace: str, action: plan.DeleteSecret) -> None:
        self._created.pop((namespace, action.name), None)  # gone, or changed since: read it by name again
        precondition = client.V1Preconditions(resource_version=action.resource_version)
        self._delete(self.core.delete_namespaced_secret, "Secret", action.name, namespace, precondition)

    def delete_account(self, namespace: str, action: plan.DeleteAccount) -> None:
        precondition = client.V1Preconditions(resource_version=action.resource_version)
        self._delete(
            self.core.delete_namespaced_service_account, "ServiceAccount", action.name, namespace, precondition
        )

    @staticmethod
    def _delete(
        delete: Callable[..., Any], kind: str, name: str, namespace: str, precondition: client.V1Preconditions
    ) -> None:
        """Delete only the exact object that was judged (a uid or resourceVersion precondition); gone is done."""
        try:
            write(delete, name, namespace, body=client.V1DeleteOptions(preconditions=precondition))
        except ApiException as error:
            if error.status != 404:
                raise refusal(error, f"deleting {kind} {name}") from None

    def read_rotation(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The SecretRotation as the API server has it now; None when it is gone."""

        def get(name: str, namespace: str, **kwargs: Any) -> Any:
            custom = self.custom.get_namespaced_custom_object
            return custom(names.GROUP, names.VERSION, namespace, names.PLURAL, name, **kwargs)

        found: dict[str, Any] | None = read_named(get, name, namespace)
        return found

    def write_status(self, namespace: str, name: str, status: dict[str, Any], uid: str, resource_version: str) -> str:
        """Replace the whole status (not merge), only on the exact resource and version read; the new version.

        Test operations make it one writer's: a status written by anyone since (a second
        replica, an operator that was thought dead) or a re-created resource of the same
        name fails the write with ``StatusConflict`` instead of being overwritten. A
        resource that is gone raises ``ResourceGone``.
        """
        operations = [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/status", "value": status},
        ]
        try:
            answer = write(
                self.custom.patch_namespaced_custom_object_status,
                names.GROUP, names.VERSION, namespace, names.PLURAL, name, operations,
                _content_type=JSON_PATCH,
            )  # fmt: skip
        except ApiException as error:
            if error.status == 404:
                raise ResourceGone(f"{namespace}/{name} is gone") from None
            if error.status in (409, 422):
                raise StatusConflict(f"status of {name}: the resource changed since it was read") from None
            raise RuntimeError(f"writing status of {name}: {safe_api_error(error)}") from None
        return str(answer["metadata"]["resourceVersion"])
