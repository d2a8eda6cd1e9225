"""Rotating a ServiceAccount: versions are accounts ``<name>-v<N>``, copied from the one in use.

A new version joins exactly the bindings of the account in use, so it is never
granted anything the old one did not have; with ``tokenSecret`` it gets a
long-lived token Secret ``<version>-token``, and token mounts are switched too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from secretrotation.core import accounts, names, references
from secretrotation.core.conditions import Reason
from secretrotation.core.credentials.base import Context, Removal, Staging
from secretrotation.core.credentials.secret import referrers_of as secret_referrers
from secretrotation.core.plan import Action, CreateAccount, CreateTokenSecret, DeleteAccount, DeleteSecret, PatchBinding
from secretrotation.core.record import InFlight, WorkloadRef
from secretrotation.core.rules import Finding, preflight
from secretrotation.core.rules.collect import Candidate
from secretrotation.core.world import AccountState, NamespaceObjects, Obj, Observed, Referrer, pod_spec

TOKEN_WAIT = timedelta(seconds=1)  # the token controller is not watched (no Secret watch): look again this soon


def referrers_of(account: str, objects: NamespaceObjects) -> list[Referrer]:
    """Pods running as the account, pod templates and live ReplicaSets naming it, and token mounts."""
    return [
        Referrer(kind, obj["metadata"]["name"])
        for kind, obj in objects.pod_spec_holders()
        if accounts.uses_account(pod_spec(kind, obj), account)
    ]


@dataclass(frozen=True)
class AccountCredential:
    token_secret: bool = False  # versions get an operator-made token Secret, and token mounts are switched
    kind: Literal["Secret", "ServiceAccount"] = "ServiceAccount"
    base_field: str = "spec.serviceAccount.name"

    def uses(self, pod_spec: Obj, name: str) -> bool:
        # Only versions with an operator-made token can switch a token mount.
        return accounts.uses_account(pod_spec, name, token=self.token_secret)

    def referrers(self, name: str, objects: NamespaceObjects) -> list[Referrer]:
        return referrers_of(name, objects)

    def exists(self, observed: Observed, name: str) -> bool:
        return observed.account(name) is not None

    def labels(self, observed: Observed, name: str) -> Mapping[str, str] | None:
        found = observed.account(name)
        return found.labels if found is not None else None

    def stage(self, context: Context, rotation: InFlight) -> Staging:
        """Create the account version, then its token, then add it to the bindings of the account in use."""
        observed, namespace = context.observed, context.namespace
        previous = observed.account(rotation.previous)
        carried = accounts.bindings_of(previous.name, namespace, observed.listed_bindings()) if previous else []
        staged = observed.account(rotation.version)
        if staged is None:
            problem = preflight.bindings_may_be_carried(carried, observed.extendable_bindings)
            if problem is not None:
                return Staging(problem=problem)
            return Staging(
                actions=(CreateAccount(rotation.version, rotation.revision, previous, rotation.nonce),),
                waiting=f"staging ServiceAccount {rotation.version}",
            )
        problem = preflight.staged_account_is_ours(staged, context.rotation, rotation.revision, rotation.nonce)
        if problem is not None:
            return Staging(problem=problem, taken=True)
        token = observed.secret(accounts.token_secret_name(staged.name)) if self.token_secret else None
        if token is not None and not preflight.created_by_this_attempt(token.annotations, rotation.nonce):
            message = f"Secret {token.name} exists but was not created by this rotation; rename or remove it"
            return Staging(problem=Finding(Reason.STAGED_VERSION_CONFLICT, message), taken=True)
        waiting, actions = self._tokens_pending(observed, staged, rotation)
        if waiting is not None:
            return Staging(actions=actions, waiting=waiting, wake_after=TOKEN_WAIT)
        bindings = tuple(WorkloadRef(b["kind"], b["metadata"]["name"]) for b in carried)
        missing = [
            b
            for b in carried
            if not any(accounts.is_subject(s, staged.name, namespace) for s in b.get("subjects") or [])
        ]
        patches = tuple(
            PatchBinding(b["kind"], b["metadata"]["name"], tuple(accounts.add_subject_patch(b, staged.name, namespace)))
            for b in missing
        )
        waiting = f"adding {staged.name} to {len(missing)} bindings" if missing else None
        return Staging(actions=patches, waiting=waiting, bindings=bindings)

    def _tokens_pending(
        self, observed: Observed, staged: AccountState, rotation: InFlight
    ) -> tuple[str | None, tuple[Action, ...]]:
        """What the new account still waits for before pods may use it, and the action that makes progress.

        Only the operator's own token Secret (``tokenSecret``): since Kubernetes 1.24 no
        account gets one by itself, and pods get bound tokens from the TokenRequest API.
        """
        if self.token_secret:
            token = observed.secret(accounts.token_secret_name(staged.name))
            if token is None:
                create = CreateTokenSecret(staged.name, rotation.revision, rotation.nonce)
                return f"creating the token Secret of {staged.name}", (create,)
            if "token" not in token.keys:
                return f"waiting for the token controller to fill {token.name}", ()
        return None, ()

    def missing(self, context: Context, pod_spec: Obj, old: str, new: str) -> list[str]:
        return []  # an account version carries everything the old one had

    def removal(
        self, context: Context, name: str, in_use: str | None, *, within_retain: bool, switched_at: datetime | None
    ) -> Removal | None:
        """Out of every binding, then its token Secret, then the account (in that order)."""
        observed, namespace = context.observed, context.namespace
        account = observed.account(name)
        token = observed.secret(accounts.token_secret_name(name))
        own_token = token if token is not None and token.labels.get(names.ROTATION_LABEL) == context.rotation else None
        if account is None:
            if own_token is None:
                return None
            # Interrupted after the account went: finish with its token, which nothing can use any more.
            candidate = Candidate(self.kind, name, own_token.labels, context.rotation, in_use, context.spec.base_name)
            return Removal(candidate, (DeleteSecret(own_token.name, own_token.resource_version),))
        tokens = [t for t in (own_token, *(observed.secret(n) for n in account.secrets)) if t is not None]
        objects = observed.objects
        candidate = Candidate(
            kind=self.kind,
            name=name,
            labels=account.labels,
            rotation=context.rotation,
            in_use=in_use,
            base_name=context.spec.base_name,
            within_retain=within_retain,
            referrers=tuple(referrers_of(name, objects)),
            mounted_tokens=tuple(r for token_name in account.secrets for r in secret_referrers(token_name, objects)),
            token_used_since_switch=switched_at is not None
            and any(accounts.token_used_since(t.labels, switched_at) for t in tokens),
        )
        actions: list[Action] = [
            PatchBinding(b["kind"], b["metadata"]["name"], tuple(accounts.remove_subject_patch(b, name, namespace)))
            for b in accounts.bindings_of(name, namespace, observed.listed_bindings())
        ]
        if own_token:
            actions.append(DeleteSecret(own_token.name, own_token.resource_version))
        actions.append(DeleteAccount(name, account.resource_version))
        return Removal(candidate, tuple(actions))

    def rewrite(self, pod_spec: Obj, old: str, new: str) -> Obj:
        rewritten, _ = references.rewrite_service_account(pod_spec, old, new)
        if self.token_secret:
            old_token, new_token = accounts.token_secret_name(old), accounts.token_secret_name(new)
            rewritten, _ = references.rewrite_secret_references(rewritten, old_token, new_token)
        return rewritten
