"""The platform's rules, free of HTTP: identity (users, teams, keys, projects), device login,
run reporting (jobs, traces, spans) and cancellation. Routes in `hud.platform.api` call these."""

from __future__ import annotations

from hud.platform.services.device import DeviceService
from hud.platform.services.errors import (
    Conflict,
    DeviceFlowError,
    Forbidden,
    Invalid,
    NotFound,
    PlatformError,
    Unauthorized,
)
from hud.platform.services.identity import Identity, IdentityService
from hud.platform.services.runs import RunService

__all__ = [
    "Conflict",
    "DeviceFlowError",
    "DeviceService",
    "Forbidden",
    "Identity",
    "IdentityService",
    "Invalid",
    "NotFound",
    "PlatformError",
    "RunService",
    "Unauthorized",
]
