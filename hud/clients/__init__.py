"""Clients of the control channel: `connect`, `HudClient` and capability tunnels."""

from hud.clients.client import (
    HudClient,
    connect,
    grade_score,
    parse_address,
    register_capability_client,
    routed_url,
)
from hud.protocol import HudProtocolError

__all__ = [
    "HudClient",
    "HudProtocolError",
    "connect",
    "grade_score",
    "parse_address",
    "register_capability_client",
    "routed_url",
]
