"""The engine's error reporting: what reaches logs and Events."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from secretrotation.shell.engine import describe_error


def test_api_errors_are_described_without_their_body() -> None:
    error = ApiException(status=422, reason="Unprocessable Entity")
    error.body = '{"message": "stringData.password: canary-Zx81-do-not-leak"}'

    described = describe_error(error)

    assert "canary" not in described and "422" in described


def test_other_errors_keep_their_type_and_message() -> None:
    assert describe_error(KeyError("phase")) == "KeyError: 'phase'"
