"""What a kubelet would report for a pod: the pure half of the simulated kubelet.

The rules follow the real kubelet wherever they matter to secret rotation:

* a non-optional secret volume (or projected secret source) whose Secret or
  item key is missing keeps the pod ``ContainerCreating`` with a ``FailedMount``
  Event;
* an ``imagePullSecrets`` entry naming a missing Secret gives ``ImagePullBackOff``;
* a container whose non-optional ``secretKeyRef`` or ``envFrom.secretRef``
  needs a missing Secret or key waits in ``CreateContainerConfigError``, and
  starts once it appears;
* a container that has started keeps running when its Secret goes away: env
  values were resolved at start and mounted files stay;
* init containers start one at a time, in order, before the main containers: a
  regular one runs to completion, a native sidecar (``restartPolicy: Always``,
  Kubernetes 1.29+) keeps running beside them once it has started (with a
  ``startupProbe``, once that passed, after the readiness delay); a sidecar is
  reported in ``initContainerStatuses`` and is crash-looped by faults like any
  running container;
* otherwise containers run, and the pod turns Ready after a readiness delay,
  once every main container and every sidecar is ready.

Faults are injected per namespace with a ConfigMap named ``sim-kubelet-faults``
whose ``faults.yaml`` key holds a list of rules, for example::

    - secret: db-credentials-v2     # pods that reference this Secret ...
      effect: CrashLoop             # ... crash-loop, restartCount rising
    - serviceAccount: deployer-v2   # pods running as this account ...
      effect: NeverReady            # ... run but never pass readiness
    - secret: db-credentials-v2     # in pods that reference this Secret, ...
      container: proxy              # ... only this container (a sidecar, say) ...
      effect: CrashLoop             # ... crash-loops

Effects: ``CrashLoop`` and ``NeverReady``. Without ``container`` a rule affects
every container that keeps running: the main containers and the sidecars.

Nothing here reads a secret value: the kubelet only knows which keys exist.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import yaml

from secretrotation_dev.devcluster.containers import completed, format_time, parse_time, running, waiting
from secretrotation_dev.devcluster.secretchecks import (
    SecretKeys,
    config_problem,
    mount_problems,
    pull_problems,
    referenced_secrets,
)

FAULTS_CONFIGMAP = "sim-kubelet-faults"
FAULTS_KEY = "faults.yaml"
READINESS_DELAY_ANNOTATION = "sim.secretrotation.dev/readiness-delay-seconds"


class Effect(enum.Enum):
    CRASH_LOOP = "CrashLoop"
    NEVER_READY = "NeverReady"


@dataclasses.dataclass(frozen=True)
class Fault:
    """An effect on the pods a rule matches; on one container of theirs when ``container`` is set."""

    effect: Effect
    secret: str | None = None
    service_account: str | None = None
    container: str | None = None

    def matches(self, pod: Mapping[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        if self.secret is not None and self.secret not in referenced_secrets(spec):
            return False
        if self.service_account is not None and self.service_account != _service_account(spec):
            return False
        return self.secret is not None or self.service_account is not None

    def affects(self, container: Mapping[str, Any]) -> bool:
        return self.container is None or self.container == container.get("name")


def parse_faults(text: str) -> list[Fault]:
    """Rules of a ``faults.yaml``; raises ValueError naming the bad entry."""
    rules = yaml.safe_load(text)
    if rules is None:
        return []
    if not isinstance(rules, list):
        raise ValueError(f"{FAULTS_KEY} must be a list of rules")
    faults = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict) or "effect" not in rule:
            raise ValueError(f"{FAULTS_KEY}[{index}] needs an effect")
        try:
            effect = Effect(rule["effect"])
        except ValueError:
            raise ValueError(f"{FAULTS_KEY}[{index}].effect must be one of {[e.value for e in Effect]}") from None
        if "secret" not in rule and "serviceAccount" not in rule:
            raise ValueError(f"{FAULTS_KEY}[{index}] needs a secret or a serviceAccount to match")
        container = rule.get("container")
        if container is not None and not (isinstance(container, str) and container):
            raise ValueError(f"{FAULTS_KEY}[{index}].container must name a container")
        faults.append(Fault(effect, rule.get("secret"), rule.get("serviceAccount"), container))
    return faults


@dataclasses.dataclass
class PodRuntime:
    """What the simulated container runtime remembers about one pod.

    ``started`` holds when each container (init, sidecar or main) was first started.
    """

    started: dict[str, datetime] = dataclasses.field(default_factory=dict)
    transitions: dict[str, tuple[str, datetime]] = dataclasses.field(default_factory=dict)
    events_posted: set[tuple[str, str]] = dataclasses.field(default_factory=set)

    @classmethod
    def from_status(cls, pod: Mapping[str, Any], now: datetime) -> PodRuntime:
        """Rebuild the runtime of a pod a previous kubelet process already started."""
        runtime = cls()
        status = pod.get("status") or {}
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            state = cs.get("state") or {}
            if "running" in state or cs.get("restartCount", 0) > 0 or "terminated" in state:
                started_at = (state.get("running") or state.get("terminated") or {}).get("startedAt")
                runtime.started[cs["name"]] = parse_time(started_at) if started_at else now
        for condition in status.get("conditions") or []:
            if condition.get("lastTransitionTime"):
                runtime.transitions[condition["type"]] = (
                    condition["status"],
                    parse_time(condition["lastTransitionTime"]),
                )
        return runtime


@dataclasses.dataclass(frozen=True)
class PodEvent:
    reason: str
    message: str
    type: str = "Warning"


@dataclasses.dataclass(frozen=True)
class Observation:
    """The status the kubelet reports, Events to post, and when to look again."""

    status: dict[str, Any]
    events: tuple[PodEvent, ...]
    wake_at: datetime | None


def is_sidecar(container: Mapping[str, Any]) -> bool:
    """A native sidecar: an init container that keeps running (``restartPolicy: Always``)."""
    return container.get("restartPolicy") == "Always"


def _service_account(spec: Mapping[str, Any]) -> str:
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")


@dataclasses.dataclass
class _Look:
    """One observation in the making: what the containers report, and what it found."""

    now: datetime
    ready_after: timedelta
    effects: list[Fault]
    events: list[PodEvent] = dataclasses.field(default_factory=list)
    wake_at: datetime | None = None
    all_ready: bool = True

    def wake(self, at: datetime) -> None:
        self.wake_at = at if self.wake_at is None or at < self.wake_at else self.wake_at

    def effects_on(self, container: Mapping[str, Any]) -> set[Effect]:
        return {fault.effect for fault in self.effects if fault.affects(container)}


class PodSimulator:
    """Computes a pod's status from its spec, the Secrets that exist, faults and time."""

    def __init__(self, readiness_delay: timedelta, crash_interval: timedelta) -> None:
        self.readiness_delay = readiness_delay
        self.crash_interval = crash_interval

    def observe(
        self,
        pod: Mapping[str, Any],
        runtime: PodRuntime,
        secret_keys: SecretKeys,
        faults: Iterable[Fault],
        now: datetime,
    ) -> Observation:
        namespace = pod["metadata"]["namespace"]
        spec = pod.get("spec") or {}
        look = _Look(now, self._readiness_delay(pod), [fault for fault in faults if fault.matches(pod)])
        containers = list(spec.get("containers") or [])
        init_containers = list(spec.get("initContainers") or [])

        if not runtime.started:
            problems = mount_problems(namespace, spec, secret_keys)
            if problems:
                look.events += [PodEvent("FailedMount", p) for p in problems]
                return self._pending(pod, runtime, look, containers, "ContainerCreating")
            problems = pull_problems(namespace, spec, secret_keys)
            if problems:
                look.events += [PodEvent("Failed", p) for p in problems]
                return self._pending(pod, runtime, look, containers, "ImagePullBackOff")

        init_statuses, initialized = self._init_containers(namespace, init_containers, runtime, secret_keys, look)
        if not initialized:
            return self._pending(pod, runtime, look, containers, "PodInitializing", init_statuses)
        run_to_completion = spec.get("restartPolicy") in ("Never", "OnFailure")
        statuses = self._main_containers(namespace, containers, runtime, secret_keys, look, run_to_completion)
        if run_to_completion and statuses and all("terminated" in s["state"] for s in statuses):
            # The main containers are done: the kubelet stops the sidecars, and the pod has succeeded.
            finished = max(parse_time(s["state"]["terminated"]["finishedAt"]) for s in statuses)
            init_statuses = [completed(c, finished, runtime.started[c["name"]]) for c in init_containers]
            phase, look.all_ready = "Succeeded", False
        else:
            phase = "Running" if any(c["name"] in runtime.started for c in containers) else "Pending"
        look.all_ready = look.all_ready and bool(containers)
        status = self._status(pod, runtime, now, phase, look.all_ready, statuses, init_statuses, initialized=True)
        return Observation(status, _fresh(runtime, look.events), look.wake_at)

    def _init_containers(
        self,
        namespace: str,
        init_containers: list[Mapping[str, Any]],
        runtime: PodRuntime,
        secret_keys: SecretKeys,
        look: _Look,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Their statuses, and whether all have run (or, sidecars, started): one at a time, in order."""
        statuses: list[dict[str, Any]] = []
        for index, container in enumerate(init_containers):
            name = container["name"]
            later = [waiting(c, "PodInitializing") for c in init_containers[index + 1 :]]
            if name not in runtime.started:
                problem = config_problem(namespace, container, secret_keys)
                if problem:
                    look.events.append(PodEvent("Failed", f"Error: {problem}"))
                    return [*statuses, waiting(container, "CreateContainerConfigError", problem), *later], False
                runtime.started[name] = look.now
            started = runtime.started[name]
            if not is_sidecar(container):
                statuses.append(completed(container, started))
                continue
            sidecar = self._long_running(container, started, look)
            statuses.append(sidecar)
            # Without a startupProbe a sidecar counts as started once it runs; with one, once the probe
            # passes (after the readiness delay here), which a crash-looping sidecar never does.
            startup_passes = started + look.ready_after
            if container.get("startupProbe") and (look.now < startup_passes or "waiting" in sidecar["state"]):
                sidecar["started"] = False
                if look.now < startup_passes:
                    look.wake(startup_passes)
                return [*statuses, *later], False
        return statuses, True

    def _main_containers(
        self,
        namespace: str,
        containers: list[Mapping[str, Any]],
        runtime: PodRuntime,
        secret_keys: SecretKeys,
        look: _Look,
        run_to_completion: bool,
    ) -> list[dict[str, Any]]:
        statuses = []
        for container in containers:
            name = container["name"]
            if name not in runtime.started:
                problem = config_problem(namespace, container, secret_keys)
                if problem:
                    look.events.append(PodEvent("Failed", f"Error: {problem}"))
                    statuses.append(waiting(container, "CreateContainerConfigError", problem))
                    look.all_ready = False
                    continue
                runtime.started[name] = look.now
            started = runtime.started[name]
            finished = started + look.ready_after
            crashing = Effect.CRASH_LOOP in look.effects_on(container)
            if run_to_completion and not crashing and look.now >= finished:
                statuses.append(completed(container, finished, started))
            else:
                statuses.append(self._long_running(container, started, look))
        return statuses

    def _readiness_delay(self, pod: Mapping[str, Any]) -> timedelta:
        annotation = (pod["metadata"].get("annotations") or {}).get(READINESS_DELAY_ANNOTATION)
        try:
            return timedelta(seconds=float(annotation)) if annotation is not None else self.readiness_delay
        except ValueError:
            return self.readiness_delay

    def _long_running(self, container: Mapping[str, Any], started: datetime, look: _Look) -> dict[str, Any]:
        """The status of a main container or a sidecar that has started; its readiness joins the pod's."""
        effects = look.effects_on(container)
        if Effect.CRASH_LOOP in effects:
            status, next_crash = self._crash_looping(container, started, look.now)
            look.wake(next_crash)
            look.all_ready = False
            return status
        ready_at = started + look.ready_after
        ready = look.now >= ready_at and Effect.NEVER_READY not in effects
        if not ready and Effect.NEVER_READY not in effects:
            look.wake(ready_at)
        look.all_ready = look.all_ready and ready
        return running(container, started, ready)

    def _crash_looping(
        self, container: Mapping[str, Any], started: datetime, now: datetime
    ) -> tuple[dict[str, Any], datetime]:
        """A container that exits right after each start; restarts every crash_interval."""
        crashes = int((now - started) / self.crash_interval) + 1
        last_crash = started + self.crash_interval * (crashes - 1)
        status = waiting(container, "CrashLoopBackOff", f"back-off restarting failed container {container['name']}")
        status["restartCount"] = crashes
        status["lastState"] = {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": format_time(last_crash),
                "finishedAt": format_time(last_crash),
            }
        }
        return status, started + self.crash_interval * crashes

    def _pending(
        self,
        pod: Mapping[str, Any],
        runtime: PodRuntime,
        look: _Look,
        containers: list[Mapping[str, Any]],
        reason: str,
        init_statuses: list[dict[str, Any]] | None = None,
    ) -> Observation:
        statuses = [waiting(c, reason) for c in containers]
        status = self._status(
            pod, runtime, look.now, "Pending", False, statuses, init_statuses or [], initialized=init_statuses is None
        )
        return Observation(status, _fresh(runtime, look.events), look.wake_at)

    def _status(
        self,
        pod: Mapping[str, Any],
        runtime: PodRuntime,
        now: datetime,
        phase: str,
        ready: bool,
        statuses: list[dict[str, Any]],
        init_statuses: list[dict[str, Any]],
        *,
        initialized: bool,
    ) -> dict[str, Any]:
        def condition(kind: str, value: bool) -> dict[str, Any]:
            text = "True" if value else "False"
            previous = runtime.transitions.get(kind)
            if previous is None or previous[0] != text:
                runtime.transitions[kind] = (text, now)
            return {"type": kind, "status": text, "lastTransitionTime": format_time(runtime.transitions[kind][1])}

        existing = pod.get("status") or {}
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [
                condition("Initialized", initialized),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", True),
            ],
            "containerStatuses": statuses,
            "startTime": existing.get("startTime") or format_time(now),
            "hostIP": "127.0.0.1",
            "qosClass": existing.get("qosClass", "BestEffort"),
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        return status


def _fresh(runtime: PodRuntime, events: list[PodEvent]) -> tuple[PodEvent, ...]:
    """Events not posted for this pod before: the kubelet reports a problem once, not every look."""
    fresh = tuple(e for e in dict.fromkeys(events) if (e.reason, e.message) not in runtime.events_posted)
    runtime.events_posted.update((e.reason, e.message) for e in fresh)
    return fresh


def status_differs(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """True when writing ``desired`` would change what the pod's status says."""
    return any(current.get(key) != value for key, value in desired.items())
