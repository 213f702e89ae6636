"""Clients of the control channel: `connect`, `HudClient` and capability tunnels."""

from hud.capabilities import register_default_clients
from hud.clients.client import (
    HudClient,
    connect,
    grade_score,
    parse_address,
    register_capability_client,
    routed_url,
)
from hud.protocol import HudProtocolError

register_default_clients()  # SSH, MCP, CDP, RFB clients for `HudClient.open` (lazy imports)

__all__ = [
    "HudClient",
    "HudProtocolError",
    "connect",
    "grade_score",
    "parse_address",
    "register_capability_client",
    "routed_url",
]
