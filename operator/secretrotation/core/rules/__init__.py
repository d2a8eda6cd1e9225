"""Every decision the operator makes, as chains of small named checks (cert-manager's policy chains).

A check takes one input value and returns a ``Finding`` (a CamelCase reason and a
message a human can act on) when it decides, or None to pass. A chain is asked
in order, and the first finding is what status reports:

* ``trigger``: should a rotation start now, and why;
* ``preflight``: may this workload be switched at all (asked before anything is);
* ``health``: has a switched workload failed verification, or passed it;
* ``collect``: may this old version be deleted.

Rule modules never import phase modules: phases ask rules, not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

Subject = TypeVar("Subject")


@dataclass(frozen=True)
class Finding:
    reason: str
    message: str


def first(chain: Sequence[Callable[[Subject], Finding | None]], subject: Subject) -> Finding | None:
    """The first finding of ``chain`` on ``subject``, or None when every check passes."""
    for check in chain:
        finding = check(subject)
        if finding is not None:
            return finding
    return None
