"""Capabilities: typed endpoints (shell, tools, browser, screen) an environment publishes."""

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

__all__ = [
    "CDP",
    "FILETRACKING",
    "MCP",
    "RFB",
    "ROBOT",
    "SSH",
    "Capability",
    "family",
    "normalize_url",
]
