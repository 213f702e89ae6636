"""Capability descriptors: the typed endpoints (shell, tools, browser, screen) an environment
publishes, and the plain results both sides share.

Pure data, below both sides: the servers behind a capability live with the environment
(`hud.environment.Workspace`), the clients that open one with the clients (`hud.clients`:
`SSHClient`, `MCPClient`, `CDPClient`, `RFBClient`).
"""

from __future__ import annotations

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
from hud.capabilities.results import CommandResult

__all__ = [
    "CDP",
    "FILETRACKING",
    "MCP",
    "RFB",
    "ROBOT",
    "SSH",
    "Capability",
    "CommandResult",
    "family",
    "normalize_url",
]
