"""CollectingGarbage: delete old versions beyond ``retain``, each only past every collect rule.

Also run while idle whenever a deletion is blocked, so a version is collected as
soon as its last referrer goes (a watch on pods and workloads wakes the step).
"""

from __future__ import annotations

from datetime import timedelta

from secretrotation.core import names
from secretrotation.core.conditions import truncate
from secretrotation.core.phases.step import Step
from secretrotation.core.plan import Plan
from secretrotation.core.record import Adopted, Blocked, Phase, Result
from secretrotation.core.rules import collect as rules
from secretrotation.core.rules.health import earliest
from secretrotation.core.world import Referrer, describe

# Watches on pods, workloads, Jobs and ServiceAccounts retry a blocked deletion; CronJobs
# are not watched (their API version differs across clusters), so look again now and then.
BLOCKED_RECHECK = timedelta(minutes=10)


def collecting_garbage(step: Step) -> Plan:
    return collect(step, finish=True)


def collect(step: Step, *, finish: bool) -> Plan:
    rec, spec = step.record, step.spec
    current = rec.current
    retired = step.rotation.previous if finish else None
    # The base is never the operator's (versions are <base>-v<N>): it is not a candidate at all, and costs
    # no read; _check_adopted reports it once nothing uses it. (The collect chain refuses it too.)
    old = [
        n
        for n in dict.fromkeys([*([retired] if retired else []), *(rec.retained or [])])
        if n not in (current, spec.base_name)
    ]
    old.sort(key=lambda n: names.parse_revision(spec.base_name, n) or 0, reverse=True)
    window = set(old[: spec.retain])
    candidates = [*old, *(e.name for e in rec.pending_deletion if e.name not in old and e.name != current)]
    kept: list[str] = []
    blocked: list[Blocked] = []
    deleted: list[str] = []
    for name in candidates:
        removal = step.credential.removal(
            step.context, name, current, within_retain=name in window, switched_at=rec.last_rotation_time
        )
        if removal is None:
            continue  # already gone
        finding = rules.judge(removal.candidate)
        if finding is None:
            step.observed.require_fresh()  # a deletion is judged on objects listed lately, not only watched
            step.actions.extend(removal.actions)
            deleted.append(name)
        elif finding.reason == "Retained":
            kept.append(name)
        elif finding.reason in rules.KEEP_REASONS:
            continue
        elif finding.reason == rules.NOT_OWNED:
            step.event("NotCollected", finding.message, warning=True)
        else:
            blocked.append(Blocked(name, finding.reason, truncate(finding.message)))
            if not any(e.name == name and e.message == finding.message for e in step.before.pending_deletion):
                step.event("CollectionBlocked", finding.message, warning=True)
    rec.retained = kept
    rec.pending_deletion = blocked
    _check_adopted(step)
    gone = f"; deleted {spec.credential_kind} {', '.join(deleted)}" if deleted else ""
    if finish:
        # One Event for the end of a rotation: what is in use, what was verified, what went.
        rotation = step.rotation
        verified = describe([Referrer(t.kind, t.name) for t in rotation.targets])
        on = f"{verified} verified on it" if verified else "no workload consumes it"
        step.event("Promoted", f"{rotation.version} is now in use (revision {rotation.revision}): {on}{gone}")
        rec.ended(step.now, Result.SUCCEEDED)
        rec.phase = Phase.IDLE
        rec.rotation = None
    elif deleted:
        step.event("GarbageCollected", gone.removeprefix("; "))
    step.settled()
    request = step.pending_request() if finish else None
    if request is not None:  # requested while this rotation ran: the next one starts now
        step.requested(request)
        return step.done(requeue=True)
    recheck = step.now + BLOCKED_RECHECK if blocked else None
    return step.done(wake_at=earliest(rec.next_rotation_time, recheck))


def _check_adopted(step: Step) -> None:
    adopted = step.record.adopted
    if adopted is None or not adopted.referenced:
        return
    if step.credential.referrers(adopted.name, step.observed.objects):
        return
    step.record.adopted = Adopted(adopted.name, referenced=False)
    step.event(
        "AdoptedSecretUnreferenced",
        f"{step.spec.credential_kind} {adopted.name} (adopted, not created by this rotation) is no longer "
        "referenced; it is left in place for you to remove",
    )
