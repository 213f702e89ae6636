"""Clients of the control channel (`connect`, `HudClient`, capability tunnels) and of the
capabilities an environment publishes (`SSHClient`, `MCPClient`, `CDPClient`, `RFBClient`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hud.capabilities import CommandResult
from hud.clients.capability_clients import client_factory, register_capability_client
from hud.clients.client import (
    DEFAULT_READY_TIMEOUT,
    HudClient,
    Manifest,
    RoutedCapability,
    ServerInfo,
    connect,
    grade_score,
    parse_address,
    routed_url,
)
from hud.protocol import HudProtocolError

if TYPE_CHECKING:
    from hud.clients.cdp_client import CDPClient
    from hud.clients.mcp_client import MCPClient
    from hud.clients.rfb_client import RFBClient
    from hud.clients.ssh_client import SSHClient

__all__ = [
    "DEFAULT_READY_TIMEOUT",
    "CDPClient",
    "CommandResult",
    "HudClient",
    "HudProtocolError",
    "MCPClient",
    "Manifest",
    "RFBClient",
    "RoutedCapability",
    "SSHClient",
    "ServerInfo",
    "client_factory",
    "connect",
    "grade_score",
    "parse_address",
    "register_capability_client",
    "routed_url",
]

#: Capability clients importable from here, loaded on first use (they pull in heavy libraries).
_LAZY = {
    "MCPClient": "hud.clients.mcp_client",
    "CDPClient": "hud.clients.cdp_client",
    "RFBClient": "hud.clients.rfb_client",
    "SSHClient": "hud.clients.ssh_client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hud.clients' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
