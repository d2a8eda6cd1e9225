"""What the simulated kubelet cannot set up for a pod without a Secret, and which Secrets a pod names.

Kept apart from the operator's own reference finder on purpose: the simulator is
the cluster the operator is tested against, so it must not share the operator's
mistakes. Nothing here reads a secret value: the kubelet only knows which keys exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

SecretKeys = Callable[[str, str], frozenset[str] | None]
"""(namespace, name) -> the keys of that Secret, or None when it does not exist."""


def referenced_secrets(spec: Mapping[str, Any]) -> set[str]:
    """Every Secret a pod spec names, in any container (init, sidecar or main), volume or pull secret."""
    names = {s.get("name") for s in spec.get("imagePullSecrets") or []}
    for volume in spec.get("volumes") or []:
        if volume.get("secret"):
            names.add(volume["secret"].get("secretName"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("secret"):
                names.add(source["secret"].get("name"))
    for container in _all_containers(spec):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref.get("name"))
        for source in container.get("envFrom") or []:
            if source.get("secretRef"):
                names.add(source["secretRef"].get("name"))
    names.discard(None)
    return {str(n) for n in names}


def mount_problems(namespace: str, spec: Mapping[str, Any], secret_keys: SecretKeys) -> list[str]:
    """FailedMount messages for secret volumes that cannot be set up."""
    problems = []
    for volume in spec.get("volumes") or []:
        sources = []
        if volume.get("secret"):
            source = volume["secret"]
            sources.append((source.get("secretName"), source.get("optional"), source.get("items")))
        for projected in (volume.get("projected") or {}).get("sources") or []:
            if projected.get("secret"):
                source = projected["secret"]
                sources.append((source.get("name"), source.get("optional"), source.get("items")))
        for secret, optional, items in sources:
            if optional:
                continue
            keys = secret_keys(namespace, secret)
            prefix = f'MountVolume.SetUp failed for volume "{volume.get("name")}" : '
            if keys is None:
                problems.append(f'{prefix}secret "{secret}" not found')
                continue
            for item in items or []:
                if item.get("key") not in keys:
                    problems.append(f"{prefix}couldn't find key {item.get('key')} in Secret {namespace}/{secret}")
    return problems


def pull_problems(namespace: str, spec: Mapping[str, Any], secret_keys: SecretKeys) -> list[str]:
    return [
        f'Unable to retrieve image pull secret "{ref.get("name")}": secret not found'
        for ref in spec.get("imagePullSecrets") or []
        if secret_keys(namespace, ref.get("name", "")) is None
    ]


def config_problem(namespace: str, container: Mapping[str, Any], secret_keys: SecretKeys) -> str | None:
    """Why the kubelet cannot build this container's environment, or None."""
    for env in container.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if not ref or ref.get("optional"):
            continue
        keys = secret_keys(namespace, ref.get("name", ""))
        if keys is None:
            return f'secret "{ref.get("name")}" not found'
        if ref.get("key") not in keys:
            return f"couldn't find key {ref.get('key')} in Secret {namespace}/{ref.get('name')}"
    for source in container.get("envFrom") or []:
        ref = source.get("secretRef")
        if ref and not ref.get("optional") and secret_keys(namespace, ref.get("name", "")) is None:
            return f'secret "{ref.get("name")}" not found'
    return None


def _all_containers(spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []
