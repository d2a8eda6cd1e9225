"""Talking to the API server safely: a timeout on every request, reads retried through
throttling and server errors, and failed actions sorted into the classes the engine handles:
a conflict (re-plan), a permanent refusal (``Refused``: Stalled, retried slowly), or a
transient error (retried with backoff).

No message built here carries a request body: bodies may echo what was sent, values included.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from secretrotation.shell.kubejson import raw

REQUEST_TIMEOUT = (5.0, 30.0)  # seconds to connect, and to wait for an answer
MAX_API_MESSAGE = 300


class StepConflict(RuntimeError):
    """The world changed between observing and acting; the next step re-plans."""


class StatusConflict(StepConflict):
    """Our status write lost to another write since the resource was read: read it again, then re-plan."""


class ResourceGone(RuntimeError):
    """The SecretRotation was deleted, or re-created under the same name: its task stops."""


class Refused(RuntimeError):
    """The API server refused an action for good (a permission, a quota, an admission policy, a validation).

    Retrying at once would only be refused again: the engine reports it as ``Stalled``
    with ``reason``, and retries slowly. ``message`` is the API server's own message,
    clipped, with every value this operator sent removed.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class BoundedApiClient(client.ApiClient):
    """An API client whose every request has a timeout (the generated client has none by default).

    Without one, a half-open connection would hang a worker thread forever.
    """

    def call_api(  # type: ignore[no-untyped-def]
        self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None
    ):
        return super().call_api(method, url, header_params, body, post_params, _request_timeout or REQUEST_TIMEOUT)


def refusal(error: ApiException, what: str, sent: Iterable[str] = (), *, patch: bool = False) -> Exception:
    """The exception a failed action raises: ``Refused`` for a permanent refusal, else one that is retried.

    409 is a conflict, and so is a 422 on a JSON patch, whose ``test`` operations failed
    (unless an admission policy says it denied it): the next step re-plans from a fresh view.
    429, 5xx and anything unknown are retried with backoff.
    """
    message = _api_message(error, sent)
    policy = "ValidatingAdmissionPolicy" in message
    if error.status == 409 or (error.status == 422 and patch and not policy):
        return StepConflict(f"{what}: the object changed before the request ({error.status})")
    if error.status == 403:
        if "exceeded quota" in message:
            return Refused("QuotaExceeded", f"{what}: {message}")
        if "admission" in message.lower() or "denied" in message.lower():
            return Refused("AdmissionDenied", f"{what}: {message}")
        return Refused("Forbidden", f"{what}: {message}")
    if error.status == 422:
        reason = "AdmissionDenied" if policy else "Invalid"
        return Refused(reason, f"{what}: {message}")
    if error.status == 400:
        return Refused("BadRequest", f"{what}: {message}")
    return RuntimeError(f"{what}: {safe_api_error(error)}")


def _api_message(error: ApiException, sent: Iterable[str]) -> str:
    """The Status message of an API error, clipped, with any value we sent replaced (never echoed)."""
    try:
        message = str(json.loads(error.body or "{}").get("message") or error.reason or "")
    except (ValueError, AttributeError):
        message = str(error.reason or "")
    for value in sent:
        if value:
            message = message.replace(value, "<redacted>")
    return message if len(message) <= MAX_API_MESSAGE else message[: MAX_API_MESSAGE - 3] + "..."


READ_ATTEMPTS = 4
MAX_RETRY_AFTER = 10.0  # seconds; a longer Retry-After is left to the step's own backoff


def read(call: Callable[..., Any], *args: Any, sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> Any:
    """``raw(call, ...)`` for a read, retried with jittered backoff on 429, 5xx and connection trouble.

    Reads are idempotent, so a lost answer or a throttled request costs a short wait here
    rather than a failed step. Retry-After is honoured (up to ``MAX_RETRY_AFTER``).
    Also used for the operator's writes, each of which is safe to repeat (see ``write``).
    """
    for attempt in range(READ_ATTEMPTS):
        try:
            return raw(call, *args, **kwargs)
        except ApiException as error:
            transient = error.status == 429 or (error.status or 0) >= 500
            if not transient or attempt == READ_ATTEMPTS - 1:
                raise
            delay = _retry_after(error) or _jittered(attempt)
        except (urllib3.exceptions.HTTPError, OSError):
            if attempt == READ_ATTEMPTS - 1:
                raise
            delay = _jittered(attempt)
        sleep(delay)
    raise AssertionError("unreachable: the last attempt raises")


def write(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``read``'s retries, for a write that is safe to repeat when its answer was lost.

    Every write the operator makes is: a create is judged by its nonce when it answers
    409, a patch tests the values it replaces and an apply carries the resourceVersion
    judged (a repeat fails its test or answers 409, and the next step finds the work
    done), a delete carries a precondition (a repeat answers 404), and a status write
    tests the resourceVersion it was planned from.
    """
    return read(call, *args, **kwargs)


def read_named(call: Callable[..., Any], name: str, namespace: str) -> Any:
    """``read`` of one object by name; None when it does not exist."""
    try:
        return read(call, name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _jittered(attempt: int) -> float:
    """0.2 s doubling per attempt, spread by half either way so that retries do not arrive together."""
    return 0.2 * 2.0**attempt * random.uniform(0.5, 1.5)


def _retry_after(error: ApiException) -> float | None:
    value = (error.headers or {}).get("Retry-After") if error.headers else None
    try:
        return min(float(value), MAX_RETRY_AFTER) if value is not None else None
    except ValueError:
        return None


def describe_error(error: Exception) -> str:
    """An error for logs and Events: an API error's body may echo request data, so it is never included."""
    if isinstance(error, ApiException):
        return safe_api_error(error)
    return f"{type(error).__name__}: {error}"


def safe_api_error(error: ApiException) -> str:
    """An API error without its body: bodies may echo request data, values included."""
    return f"API error {error.status} ({error.reason})"
