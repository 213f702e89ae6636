"""RFC 8628 device authorization, client side (spec platform.md §1, "Login").

`start_login` asks ``<api>/auth/device/code`` for a code; `device_login` polls
``<api>/auth/device/token`` until the user approves (``authorization_pending`` and 5xx keep
polling, ``slow_down`` adds 5 s, ``expired_token``/``access_denied`` end it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from hud.protocol.errors import HudError


class LoginError(HudError):
    """The flow ended without a key; ``code`` is the RFC 8628 error (or ``unreachable``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class DeviceGrant:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: float
    interval: float


@dataclass
class LoginResult:
    api_key: str
    email: str | None = None
    team: str | None = None
    settings: dict[str, str] = field(default_factory=dict)


def _url(api_url: str, path: str) -> str:
    return api_url.rstrip("/") + path


def start_login(
    api_url: str, *, client_name: str, client_version: str, timeout: float = 30
) -> DeviceGrant:
    try:
        reply = httpx.post(
            _url(api_url, "/auth/device/code"),
            json={"client_name": client_name, "client_version": client_version},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise LoginError("unreachable", f"cannot reach {api_url}: {exc}") from None
    if reply.status_code == 404:
        raise LoginError("unsupported", f"{api_url} does not offer device login")
    if not reply.is_success:
        raise LoginError("error", f"{api_url} answered {reply.status_code} to the login request")
    try:
        body = reply.json()
        uri = str(body["verification_uri"])
        user_code = str(body["user_code"])
        return DeviceGrant(
            device_code=str(body["device_code"]),
            user_code=user_code,
            verification_uri=uri,
            verification_uri_complete=str(
                body.get("verification_uri_complete") or f"{uri}?code={user_code}"
            ),
            expires_in=float(body.get("expires_in") or 600),
            interval=float(body.get("interval") or 5),
        )
    except (ValueError, KeyError, TypeError):
        raise LoginError("error", f"{api_url} sent a login reply hud cannot read") from None


def _error_code(reply: httpx.Response) -> str:
    try:
        body: Any = reply.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("error"), str):
            return detail["error"]
        if isinstance(body.get("error"), str):
            return body["error"]
    return ""


def device_login(
    api_url: str,
    grant: DeviceGrant,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    timeout: float = 30,
) -> LoginResult:
    """Poll until the code is approved; returns the new key (and the platform's URLs)."""
    deadline = clock() + grant.expires_in
    interval = grant.interval
    with httpx.Client(timeout=timeout) as http:
        while True:
            sleep(interval)
            if clock() > deadline:
                raise LoginError("expired_token", "the login code expired; run `hud login` again")
            try:
                reply = http.post(
                    _url(api_url, "/auth/device/token"), json={"device_code": grant.device_code}
                )
            except httpx.HTTPError:
                continue
            if reply.status_code == 200:
                try:
                    body = reply.json()
                    settings = body.get("settings") or {}
                    return LoginResult(
                        api_key=str(body["api_key"]),
                        email=(body.get("user") or {}).get("email"),
                        team=(body.get("team") or {}).get("name"),
                        settings={str(k): str(v) for k, v in settings.items()},
                    )
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise LoginError("error", "the platform sent a key hud cannot read") from None
            if reply.status_code >= 500:
                continue
            code = _error_code(reply)
            if code == "authorization_pending":
                continue
            if code == "slow_down":
                interval += 5
                continue
            if code == "access_denied":
                raise LoginError(code, "the login request was denied")
            if code == "expired_token":
                raise LoginError(code, "the login code expired; run `hud login` again")
            raise LoginError(code or "error", f"login failed ({reply.status_code} {code})".strip())
