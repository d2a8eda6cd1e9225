"""What a rotation requested now would do, decided by the same rules a step asks, and nothing done.

``kubectl srot plan`` shows it: the version it would stage, every workload it would
switch with the exact strings it would rewrite, what would stop it (a missing key, a
paused Deployment), the consumers it would not switch, and which old versions
collection would then delete or keep, and why. Pure: the shell reads the namespace
(read-only) and asks again for what a ``NeedFacts`` names, as it does for a step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from secretrotation.core import names, record, references
from secretrotation.core.credentials import Context, Credential, for_spec, template_changes
from secretrotation.core.record import Change, WorkloadRef
from secretrotation.core.rules import Finding, collect, preflight
from secretrotation.core.spec import RotationSpec, parse_spec
from secretrotation.core.world import Obj, Observed, Resource, SecretState


@dataclass(frozen=True)
class TargetPlan:
    """A workload the rotation would switch: the strings it would rewrite, or why it may not."""

    kind: str
    name: str
    changes: tuple[Change, ...]
    missing: tuple[str, ...] = ()  # keys its consumers read that the new version would lack
    refusal: Finding | None = None  # why it may not be switched: the rotation would stop before any switch


@dataclass(frozen=True)
class Disposal:
    """What collection would do with an old version once the rotation succeeds."""

    name: str
    outcome: str  # Delete, Keep, Blocked, LeftAlone
    reason: str
    message: str


@dataclass(frozen=True)
class Preview:
    rotation: str
    namespace: str
    kind: str  # Secret or ServiceAccount
    base: str
    revision: int
    version: str  # the version it would stage
    previous: str | None  # the version in use (None: nothing yet)
    targets: tuple[TargetPlan, ...]
    untracked: tuple[WorkloadRef, ...]
    disposals: tuple[Disposal, ...]
    problem: Finding | None  # the first finding that would stop it before anything is switched
    notes: tuple[str, ...]  # what else would keep it from starting or finishing as shown


def preview(resource: Resource, observed: Observed) -> Preview:
    """The rotation a request now would start. Raises ``InvalidSpec``, and ``NeedFacts`` for what to read first."""
    spec = parse_spec(resource.spec)
    rec = record.read(resource.status)
    credential = for_spec(spec)
    revision = max(rec.revision, rec.highest_revision) + 1
    version = names.version_name(spec.base_name, revision)
    previous = rec.current or (spec.base_name if credential.exists(observed, spec.base_name) else None)
    notes = _notes(spec, rec)
    problem = preflight.base_is_not_a_version(
        credential.kind, spec.base_name, credential.labels(observed, spec.base_name)
    )
    if credential.kind == "Secret" and spec.from_secret is not None:
        problem = problem or preflight.from_secret_may_be_copied(spec.from_secret, observed.secret(spec.from_secret))
    context = Context(resource.name, resource.namespace, spec, _with_staged(spec, observed, version))
    olds = [n for n in dict.fromkeys([previous, spec.base_name]) if n and n != version]
    selected, unselected = _select(spec, observed)
    if spec.targets is not None and not selected:
        notes += ("spec.targets match no workload in the namespace",)
    targets = tuple(t for w in selected if (t := _target(credential, context, w, olds, version)) is not None)
    problem = problem or next((t.refusal for t in targets if t.refusal is not None), None)
    if not targets:
        notes += (f"no workload consumes {spec.base_name}: {version} would be promoted unused",)
    untracked = _untracked(credential, observed, olds, unselected)
    disposals = _disposals(credential, context, rec, previous, version, [(t.kind, t.name) for t in targets])
    return Preview(
        resource.name, resource.namespace, credential.kind, spec.base_name, revision, version, previous,
        targets, untracked, disposals, problem, notes,
    )  # fmt: skip


def _notes(spec: RotationSpec, rec: record.Record) -> tuple[str, ...]:
    notes = []
    if spec.paused:
        notes.append("spec.paused is true: a request waits until the rotation is resumed")
    if rec.rotation is not None:
        notes.append(
            f"revision {rec.rotation.revision} ({rec.rotation.version}) is in flight: a request starts after it ends"
        )
    return tuple(notes)


def _with_staged(spec: RotationSpec, observed: Observed, version: str) -> Observed:
    """The observation as it would be once ``version`` is staged: its key names, never a value."""
    if spec.service_account is not None:
        return observed
    if spec.from_secret is None:
        keys = frozenset(rule.key for rule in spec.generate)
    else:
        source = observed.secret(spec.from_secret)
        keys = source.keys if source is not None else frozenset()
    staged = SecretState(version, names.version_labels("preview", 1), keys, True, str(spec.secret_type), "")
    return replace(observed, secrets={**(observed.secrets or {}), version: staged})


def _select(spec: RotationSpec, observed: Observed) -> tuple[list[Obj], list[Obj]]:
    """The workloads ``spec.targets`` select (all when unset), sorted, and the others."""
    candidates = sorted(observed.objects.workloads(), key=lambda w: (w["kind"], w["metadata"]["name"]))
    if spec.targets is None:
        return candidates, []

    def chosen(w: Obj) -> bool:
        labels = w["metadata"].get("labels") or {}
        return any(t.matches(w["kind"], w["metadata"]["name"], labels) for t in spec.targets or ())

    return [w for w in candidates if chosen(w)], [w for w in candidates if not chosen(w)]


def _target(
    credential: Credential, context: Context, workload: Obj, olds: Sequence[str], new: str
) -> TargetPlan | None:
    """What staging would decide for one selected workload (None: it consumes no version in use)."""
    pod_spec = references.pod_spec_of(workload)
    consumed = [old for old in olds if credential.uses(pod_spec, old)]
    if not consumed:
        return None
    missing = tuple(m for old in consumed for m in credential.missing(context, pod_spec, old, new))
    refusal = preflight.judge_target(preflight.TargetCheck(workload, missing))
    changes = template_changes(credential, workload, consumed, new)
    return TargetPlan(workload["kind"], workload["metadata"]["name"], changes, missing, refusal)


def _untracked(credential: Credential, observed: Observed, olds: Sequence[str], unselected: Sequence[Obj]) -> tuple[
    WorkloadRef, ...
]:  # fmt: skip
    """Consumers of the version in use that would not be switched (Jobs and CronJobs never are)."""
    objects = observed.objects
    others = [
        *unselected,
        *({**job, "kind": "Job"} for job in objects.jobs),
        *({**cron, "kind": "CronJob"} for cron in objects.listed_cron_jobs()),
    ]
    return tuple(
        WorkloadRef(w["kind"], w["metadata"]["name"])
        for w in others
        if any(credential.uses(references.pod_spec_of(w), old) for old in olds)
    )


def _disposals(
    credential: Credential,
    context: Context,
    rec: record.Record,
    previous: str | None,
    version: str,
    switched: Sequence[tuple[str, str]],
) -> tuple[Disposal, ...]:
    """Each old version as collection would judge it after a success: the targets, their pods and
    ReplicaSets then run the new version, and every other referrer still holds the old one."""
    spec, objects = context.spec, context.observed.objects
    moving = set(switched)
    for kind, name in switched:
        workload = objects.workload(kind, name)
        if workload is not None:
            moving |= {("Pod", p["metadata"]["name"]) for p in objects.pods_of(workload)}
            moving |= {("ReplicaSet", r["metadata"]["name"]) for r in objects.replica_sets_of(workload)}
    old = [n for n in dict.fromkeys([*([previous] if previous else []), *(rec.retained or [])]) if n != version]
    old.sort(key=lambda n: names.parse_revision(spec.base_name, n) or 0, reverse=True)
    window = set([n for n in old if n != spec.base_name][: spec.retain])
    candidates = [*old, *(e.name for e in rec.pending_deletion if e.name not in old and e.name != version)]
    disposals = []
    for name in candidates:
        removal = credential.removal(
            context, name, version, within_retain=name in window, switched_at=context.observed.now
        )
        if removal is None:
            continue
        candidate = removal.candidate
        found = candidate.referrers() if callable(candidate.referrers) else candidate.referrers
        remaining = tuple(r for r in found if (r.kind, r.name) not in moving)
        finding = collect.judge(replace(candidate, referrers=remaining))
        disposals.append(_disposal(name, finding))
    return tuple(disposals)


def _disposal(name: str, finding: Finding | None) -> Disposal:
    if finding is None:
        return Disposal(name, "Delete", "Unused", "nothing would reference it any more")
    if finding.reason in collect.KEEP_REASONS:
        return Disposal(name, "Keep", finding.reason, finding.message)
    if finding.reason == collect.NOT_OWNED:
        return Disposal(name, "LeftAlone", finding.reason, finding.message)
    return Disposal(name, "Blocked", finding.reason, finding.message)
