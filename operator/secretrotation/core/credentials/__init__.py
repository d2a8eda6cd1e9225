"""What is rotated, behind one protocol: a Secret (``secret``) or a ServiceAccount (``account``).

Each credential kind answers the same questions, so the phases never branch on
the mode: what references a version, how to stage one, what must hold before
one is removed (and the actions that remove it), and how a pod template is
rewritten to use a new one.
"""

from __future__ import annotations

from secretrotation.core.credentials.account import AccountCredential
from secretrotation.core.credentials.base import Context, Credential, Removal, Staging, template_changes
from secretrotation.core.credentials.secret import SecretCredential
from secretrotation.core.spec import RotationSpec

__all__ = [
    "AccountCredential",
    "Context",
    "Credential",
    "Removal",
    "SecretCredential",
    "Staging",
    "for_spec",
    "template_changes",
]


def for_spec(spec: RotationSpec) -> Credential:
    """The credential a spec rotates."""
    if spec.service_account is not None:
        return AccountCredential(token_secret=spec.service_account.token_secret)
    return SecretCredential()
