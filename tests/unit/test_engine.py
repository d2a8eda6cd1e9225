"""The shell's error reporting and classes: what reaches logs and Events, what is refused, what is retried."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from kubernetes.client.exceptions import ApiException

from secretrotation.shell.api import Refused, StepConflict, read, refusal
from secretrotation.shell.engine import describe_error


def test_api_errors_are_described_without_their_body() -> None:
    error = ApiException(status=422, reason="Unprocessable Entity")
    error.body = '{"message": "stringData.password: canary-Zx81-do-not-leak"}'

    described = describe_error(error)

    assert "canary" not in described and "422" in described


def test_other_errors_keep_their_type_and_message() -> None:
    assert describe_error(KeyError("phase")) == "KeyError: 'phase'"


# --- error classes: refused for good, or retried -------------------------------------------------


def api_error(status: int, message: str) -> ApiException:
    error = ApiException(status=status, reason="reason")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


@pytest.mark.parametrize(
    ("status", "message", "patch", "reason"),
    [
        (403, 'secrets "db-v2" is forbidden: exceeded quota: secrets, requested: secrets=1', False, "QuotaExceeded"),
        (403, 'admission webhook "deny.example.com" denied the request: no', False, "AdmissionDenied"),
        (403, 'secrets is forbidden: User "system:serviceaccount:x:y" cannot create resource', False, "Forbidden"),
        (422, "ValidatingAdmissionPolicy 'no-patch' with binding 'b' denied request", True, "AdmissionDenied"),
        (422, 'Secret "db-v2" is invalid: data[tls.key]: Required value', False, "Invalid"),
        (400, "the body of the request was in an unknown format", False, "BadRequest"),
    ],
)
def test_a_permanent_refusal_is_refused_with_a_reason_naming_it(
    status: int, message: str, patch: bool, reason: str
) -> None:
    refused = refusal(api_error(status, message), "creating Secret db-v2", patch=patch)

    assert isinstance(refused, Refused) and refused.reason == reason, refused
    assert message[:40] in str(refused) and str(refused).startswith("creating Secret db-v2: ")


@pytest.mark.parametrize(
    ("status", "patch", "kind"),
    [(409, False, StepConflict), (422, True, StepConflict), (429, False, RuntimeError), (503, False, RuntimeError)],
)
def test_conflicts_and_transient_errors_are_retried_not_refused(status: int, patch: bool, kind: type) -> None:
    error = refusal(api_error(status, "try again"), "patching Deployment web", patch=patch)

    assert type(error) is kind, error


def test_a_refusal_never_echoes_a_value_the_operator_sent() -> None:
    leaked = api_error(422, 'Secret "db-v2" is invalid: stringData[password]: Invalid value: "canary-Zx81-do-not-leak"')

    refused = refusal(leaked, "creating Secret db-v2", ["canary-Zx81-do-not-leak"])

    assert "canary" not in str(refused) and "<redacted>" in str(refused)


class _Answer:
    def __init__(self, payload: object) -> None:
        self.data = json.dumps(payload).encode()


def flaky(*failures: ApiException) -> Callable[..., _Answer]:
    """A client method that fails with ``failures`` in turn, then answers."""
    pending = list(failures)

    def call(*_: object, **__: object) -> _Answer:
        if pending:
            raise pending.pop(0)
        return _Answer({"items": []})

    return call


def throttled(retry_after: str) -> ApiException:
    error = ApiException(status=429, reason="Too Many Requests")
    error.headers = {"Retry-After": retry_after}
    return error


def test_a_read_is_retried_through_server_errors_and_throttling_honouring_retry_after() -> None:
    slept: list[float] = []

    answer = read(flaky(ApiException(status=503), throttled("2"), ApiException(status=500)), sleep=slept.append)

    assert answer == {"items": []}
    assert len(slept) == 3 and slept[1] == 2.0, slept
    assert all(0 < s <= 10 for s in slept), slept


def test_a_read_refused_for_good_is_not_retried() -> None:
    slept: list[float] = []

    with pytest.raises(ApiException) as refused:
        read(flaky(ApiException(status=403)), sleep=slept.append)

    assert refused.value.status == 403 and slept == []


def test_a_read_that_keeps_failing_gives_up_after_four_attempts() -> None:
    slept: list[float] = []

    with pytest.raises(ApiException):
        read(flaky(*(ApiException(status=503) for _ in range(4))), sleep=slept.append)

    assert len(slept) == 3, slept
