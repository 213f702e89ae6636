"""`Capability`: a named, typed endpoint an environment publishes to agents."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

SSH = "ssh/2"
CDP = "cdp/1.3"
RFB = "rfb/3.8"
MCP = "mcp/2025-11-25"
ROBOT = "openpi/0"
FILETRACKING = "filetracking/1"

_DEFAULT_PORTS = {"ssh": 22, "ws": 80, "wss": 443, "http": 80, "https": 443, "rfb": 5900, "tcp": 0}


def normalize_url(url: str, scheme: str, port: int | None) -> str:
    """Add a default scheme when there is no ``://`` and a default port when none is given."""
    if "://" not in url:
        url = f"{scheme}://{url}"
    parts = urlsplit(url)
    if port is None or parts.port is not None or not parts.hostname:
        return url
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    userinfo = ""
    if parts.username is not None:
        userinfo = parts.username
        if parts.password is not None:
            userinfo += f":{parts.password}"
        userinfo += "@"
    netloc = f"{userinfo}{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def family(protocol: str) -> str:
    """The protocol family: the part before ``/`` (``ssh/2`` -> ``ssh``)."""
    return protocol.split("/", 1)[0]


class Capability(BaseModel):
    """A binding in the manifest: ``{name, protocol, url, params}``."""

    model_config = ConfigDict(extra="ignore")

    name: str
    protocol: str
    url: str
    params: dict[str, Any] = Field(default_factory=dict)
    #: Set on routed copies (`HudClient.binding`): the URL as the environment published it.
    native_url: str | None = Field(default=None, exclude=True)

    @property
    def family(self) -> str:
        return family(self.protocol)

    # -- manifest round trip -------------------------------------------------
    def to_binding(self) -> dict[str, Any]:
        """The JSON object published in ``hello`` (``params`` always present)."""
        return {
            "name": self.name,
            "protocol": self.protocol,
            "url": self.url,
            "params": dict(self.params),
        }

    to_manifest = to_binding

    @classmethod
    def from_binding(cls, data: dict[str, Any]) -> Capability:
        """Parse one manifest binding; requires ``name``, ``protocol`` and ``url``."""
        if not isinstance(data, dict):
            raise TypeError(f"capability binding must be an object, got {type(data).__name__}")
        missing = [k for k in ("name", "protocol", "url") if not data.get(k)]
        if missing:
            raise ValueError(f"capability binding missing {', '.join(missing)}")
        params = dict(data.get("params") or {})
        if family(data["protocol"]) == "mcp" and "transport" not in params:
            scheme = urlsplit(data["url"]).scheme
            params["transport"] = "websocket" if scheme in ("ws", "wss") else "streamable-http"
        return cls(name=data["name"], protocol=data["protocol"], url=data["url"], params=params)

    from_manifest = from_binding

    def with_url(self, url: str) -> Capability:
        return self.model_copy(update={"url": url})

    # -- factories -----------------------------------------------------------
    @classmethod
    def ssh(
        cls,
        url: str,
        host_pubkey: str,
        *,
        user: str = "agent",
        client_key: str | None = None,
        client_key_path: str | None = None,
        shell: str | None = None,
        cwd: str | None = None,
        isolation: str | None = None,
        name: str = "shell",
    ) -> Capability:
        params: dict[str, Any] = {
            "user": user,
            "host_pubkey": host_pubkey,
            "shell": shell or ("cmd" if sys.platform == "win32" else "bash"),
        }
        for key, value in (
            ("client_key", client_key),
            ("client_key_path", client_key_path),
            ("cwd", cwd),
            ("isolation", isolation),
        ):
            if value is not None:
                params[key] = value
        return cls(name=name, protocol=SSH, url=normalize_url(url, "ssh", 22), params=params)

    @classmethod
    def cdp(cls, url: str, *, target_id: str | None = None, name: str = "browser") -> Capability:
        params: dict[str, Any] = {}
        if target_id is not None:
            params["target_id"] = target_id
        return cls(name=name, protocol=CDP, url=normalize_url(url, "ws", 9222), params=params)

    @classmethod
    def rfb(
        cls, url: str, *, password: str | None = None, display: int = 0, name: str = "screen"
    ) -> Capability:
        params: dict[str, Any] = {"display": display}
        if password is not None:
            params["password"] = password
        return cls(
            name=name, protocol=RFB, url=normalize_url(url, "rfb", 5900 + display), params=params
        )

    @classmethod
    def mcp(
        cls,
        url: str,
        *,
        auth_token: str | None = None,
        transport: str | None = None,
        name: str = "tools",
    ) -> Capability:
        if "://" not in url:
            url = f"http://{url}"
        scheme = urlsplit(url).scheme
        if scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(f"mcp capability URL must be ws, wss, http or https, got {scheme!r}")
        url = normalize_url(url, scheme, _DEFAULT_PORTS[scheme])
        if transport is None:
            transport = "websocket" if scheme in ("ws", "wss") else "streamable-http"
        if transport not in ("websocket", "streamable-http", "sse"):
            raise ValueError(f"unknown mcp transport {transport!r}")
        params: dict[str, Any] = {"transport": transport}
        if auth_token is not None:
            params["auth_token"] = auth_token
        return cls(name=name, protocol=MCP, url=url, params=params)

    @classmethod
    def robot(cls, url: str, contract: dict[str, Any], *, name: str = "robot") -> Capability:
        return cls(
            name=name,
            protocol=ROBOT,
            url=normalize_url(url, "ws", 9091),
            params={"contract": contract},
        )

    @classmethod
    def filetracking(cls, url: str, root: str, *, name: str = "filetracking") -> Capability:
        return cls(
            name=name,
            protocol=FILETRACKING,
            url=normalize_url(url, "tcp", None),
            params={"root": root, "setup_diff": True},
        )
