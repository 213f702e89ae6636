"""Retries for model calls (agents and LLM judges): 429, 5xx, timeouts and connection errors,
with backoff and jitter; and `MissingKeyError` for a provider without credentials.

Provider SDKs are built with their own retries off, so every attempt is ours and is recorded
in the agent step (G34). Errors are classified by duck typing (``status_code`` / ``code``
attributes and exception class names) so no provider SDK is imported here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hud.protocol.errors import HudError

__all__ = [
    "MissingKeyError",
    "ModelCallError",
    "RetryPolicy",
    "call_with_retries",
    "classify",
    "describe_error",
    "error_status",
    "is_context_overflow",
    "redact",
]

log = logging.getLogger("hud.agents")

T = TypeVar("T")


class MissingKeyError(HudError, ValueError):
    """No credentials for the selected provider: one line naming the variable to set."""

    def __init__(self, variable: str) -> None:
        self.variable = variable
        super().__init__(f"{variable} is not set: run `hud set {variable}=...` or export it")


RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
_CONNECTION_NAMES = frozenset(
    {
        "APIConnectionError",
        "APITimeoutError",
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "TimeoutException",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "NetworkError",
        "ServerDisconnectedError",
        "ClientConnectorError",
        "ClientOSError",
        "ClientPayloadError",
    }
)
_OVERFLOW = re.compile(
    r"context[ _-]?(length|window)|maximum context|prompt is too long|too many tokens|"
    r"input (token count|is too long)|exceeds? the (maximum|context)|context_length_exceeded|"
    r"reduce the length of the messages",
    re.IGNORECASE,
)


@dataclass
class RetryPolicy:
    """``retries`` extra attempts after the first, exponential delays with full jitter."""

    retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.5

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        backoff = min(self.base_delay * (2 ** (attempt - 1)), self.max_delay)
        wait = backoff * (1 - self.jitter) + random.uniform(0, backoff * self.jitter)
        if retry_after is not None and retry_after >= 0:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


class ModelCallError(HudError):
    """A model call failed for good; ``attempts`` lists the retried failures before it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        overflow: bool = False,
        attempts: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.overflow = overflow
        self.attempts = attempts or []


def error_status(exc: BaseException) -> int | None:
    """The HTTP status of a provider error, if it has one."""
    for attr in ("status_code", "code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError, EOFError)):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _CONNECTION_NAMES:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and _is_connection_error(cause)


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("message"):
            return str(body["message"])
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message
    return str(exc) or type(exc).__name__


def is_context_overflow(exc: BaseException) -> bool:
    """A request rejected because the conversation no longer fits the model's context."""
    status = error_status(exc)
    return status in (400, 413, 422) and bool(_OVERFLOW.search(_message(exc)))


def classify(exc: BaseException) -> str:
    """``retry`` (429, 5xx, timeouts, connection errors), ``overflow`` or ``fatal``."""
    status = error_status(exc)
    if status is not None:
        if is_context_overflow(exc):
            return "overflow"
        return "retry" if status in RETRY_STATUS or status >= 500 else "fatal"
    return "retry" if _is_connection_error(exc) else "fatal"


def describe_error(exc: BaseException) -> str:
    """``HTTP 401: <message>`` or ``<ExceptionClass>: <message>``, on one line."""
    status = error_status(exc)
    text = " ".join(_message(exc).split())
    if len(text) > 500:
        text = text[:500] + "…"
    if status is not None:
        return f"HTTP {status}: {text}"
    return f"{type(exc).__name__}: {text}"


def redact(text: str, secrets: list[str] | tuple[str, ...] | set[str]) -> str:
    """``text`` with every secret (at least 4 characters) replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
    except Exception:
        return None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    label: str = "model",
    secrets: tuple[str, ...] = (),
    attempts: list[dict[str, Any]] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """``await fn()``, retrying retryable failures; raises `ModelCallError` when it gives up.

    Each retried failure is appended to ``attempts`` as ``{"attempt", "error", "status",
    "delay"}`` (secrets redacted).
    """
    record = attempts if attempts is not None else []
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except Exception as exc:
            kind = classify(exc)
            status = error_status(exc)
            detail = redact(describe_error(exc), secrets)
            if kind != "retry" or attempt > policy.retries:
                if kind == "retry":
                    detail = f"{detail} (gave up after {attempt} attempts)"
                raise ModelCallError(
                    detail, status=status, overflow=kind == "overflow", attempts=record
                ) from None
            wait = policy.delay(attempt, retry_after(exc))
            record.append(
                {"attempt": attempt, "error": detail, "status": status, "delay": round(wait, 3)}
            )
            log.warning(
                "%s call failed (%s); retry %d/%d in %.1fs",
                label,
                detail,
                attempt,
                policy.retries,
                wait,
            )
            await sleep(wait)
