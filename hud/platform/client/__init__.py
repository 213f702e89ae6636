"""Talking to a HUD platform (ours or hosted) with httpx only — no server dependencies, so the
CLI reports runs and logs in without the ``platform`` extra.

- `device_login`: the RFC 8628 flow behind `hud login`.
- `PlatformAPI`: the read/cancel calls behind `hud jobs`, `hud trace`, `hud cancel`.
- `Reporter`: the background, batched, failure-tolerant run reporter `hud eval` subscribes.
"""

from __future__ import annotations

from hud.platform.client.api import PlatformAPI, PlatformAPIError
from hud.platform.client.login import (
    DeviceGrant,
    LoginError,
    LoginResult,
    device_login,
    start_login,
)

__all__ = [
    "DeviceGrant",
    "LoginError",
    "LoginResult",
    "PlatformAPI",
    "PlatformAPIError",
    "device_login",
    "start_login",
]
