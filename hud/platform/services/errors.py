"""The platform's error tree. Services raise these; the API maps each to an HTTP status."""

from __future__ import annotations

from hud.protocol.errors import HudError


class PlatformError(HudError):
    """Root of every error a platform service raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(PlatformError):
    """The object does not exist, or belongs to another team (the two look the same)."""


class Unauthorized(PlatformError):
    """No key, an unknown key, or a revoked key."""


class Forbidden(PlatformError):
    """The caller is known but may not do this."""


class Conflict(PlatformError):
    """The object already exists."""


class Invalid(PlatformError):
    """A request whose values the platform cannot accept."""


class DeviceFlowError(PlatformError):
    """An RFC 8628 token-endpoint error: ``code`` is ``authorization_pending``, ``slow_down``,
    ``expired_token``, ``access_denied`` or ``invalid_grant``."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
