"""Capabilities: typed endpoints (shell, tools, browser, screen) an environment publishes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hud.capabilities.capability import (
    CDP,
    FILETRACKING,
    MCP,
    RFB,
    ROBOT,
    SSH,
    Capability,
    family,
    normalize_url,
)

if TYPE_CHECKING:
    from hud.capabilities.cdp_client import CDPClient
    from hud.capabilities.mcp_client import MCPClient
    from hud.capabilities.rfb_client import RFBClient
    from hud.capabilities.ssh_client import CommandResult, SSHClient
    from hud.capabilities.workspace import Workspace

__all__ = [
    "CDP",
    "FILETRACKING",
    "MCP",
    "RFB",
    "ROBOT",
    "SSH",
    "CDPClient",
    "Capability",
    "CommandResult",
    "MCPClient",
    "RFBClient",
    "SSHClient",
    "Workspace",
    "family",
    "normalize_url",
    "register_default_clients",
]

#: Client classes importable from here, loaded on first use (they pull in heavy libraries).
_LAZY = {
    "MCPClient": "hud.capabilities.mcp_client",
    "CDPClient": "hud.capabilities.cdp_client",
    "RFBClient": "hud.capabilities.rfb_client",
    "SSHClient": "hud.capabilities.ssh_client",
    "CommandResult": "hud.capabilities.ssh_client",
    "Workspace": "hud.capabilities.workspace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hud.capabilities' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


async def _open_mcp(capability: Capability) -> Any:
    from hud.capabilities.mcp_client import MCPClient

    return await MCPClient.connect(capability)


async def _open_cdp(capability: Capability) -> Any:
    from hud.capabilities.cdp_client import CDPClient

    return await CDPClient.connect(capability)


async def _open_rfb(capability: Capability) -> Any:
    from hud.capabilities.rfb_client import RFBClient

    return await RFBClient.connect(capability)


async def _open_ssh(capability: Capability) -> Any:
    from hud.capabilities.ssh_client import SSHClient

    return await SSHClient.connect(capability)


def register_default_clients() -> None:
    """Make `HudClient.open` return our SSH, MCP, CDP and RFB clients (earlier ones stay)."""
    from hud.clients.client import CAPABILITY_CLIENTS

    CAPABILITY_CLIENTS.setdefault(MCP, _open_mcp)
    CAPABILITY_CLIENTS.setdefault(CDP, _open_cdp)
    CAPABILITY_CLIENTS.setdefault(RFB, _open_rfb)
    CAPABILITY_CLIENTS.setdefault(SSH, _open_ssh)
