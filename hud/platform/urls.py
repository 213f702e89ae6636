"""Where each client setting points on a platform served at one origin (the path prefixes of
`hud.platform.api.app`). Standard library only: the CLI and clients import it."""

from __future__ import annotations

#: Prefixes under the platform's origin.
TELEMETRY_PREFIX = "/telemetry"
GATEWAY_PREFIX = "/gateway"
WEB_PREFIX = "/web"


def client_urls(base: str) -> dict[str, str]:
    """The five client settings pointing at a platform served at ``base``."""
    base = base.rstrip("/")
    return {
        "HUD_API_URL": base,
        "HUD_TELEMETRY_URL": base + TELEMETRY_PREFIX,
        "HUD_GATEWAY_URL": base + GATEWAY_PREFIX,
        "HUD_RUNTIME_URL": base,
        "HUD_WEB_URL": base + WEB_PREFIX,
    }
