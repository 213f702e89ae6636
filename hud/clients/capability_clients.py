"""Which client `HudClient.open` returns for a capability protocol: an explicit table.

Our clients are found by lookup, not registered by importing a module: `client_factory`
consults the factories a caller registered (`register_capability_client`, they win), then
`DEFAULT_CLIENTS`, importing the client's module on first use (they pull in heavy libraries).
"""

from __future__ import annotations

import concurrent.futures
import importlib
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from hud.capabilities import CDP, MCP, RFB, SSH, Capability

#: ``factory(capability)`` -> an awaitable opened client.
ClientFactory = Callable[[Capability], Awaitable[Any]]

#: protocol -> (module, class) of our client; the class's ``connect(capability)`` opens it.
DEFAULT_CLIENTS: dict[str, tuple[str, str]] = {
    SSH: ("hud.clients.ssh_client", "SSHClient"),
    MCP: ("hud.clients.mcp_client", "MCPClient"),
    CDP: ("hud.clients.cdp_client", "CDPClient"),
    RFB: ("hud.clients.rfb_client", "RFBClient"),
}

#: protocol -> libraries our client for it loads on first use that take long to import
#: (asyncssh: ~110 ms). `preload_libraries` imports them in a worker thread as soon as a
#: manifest announces the protocol, so `HudClient.open` is only the protocol handshake and the
#: event loop never stalls on the import.
SLOW_IMPORTS: dict[str, tuple[str, ...]] = {SSH: ("asyncssh",)}

_preloads: dict[str, concurrent.futures.Future[Any]] = {}
_preloader: concurrent.futures.ThreadPoolExecutor | None = None


def preload_libraries(protocols: Iterable[str]) -> list[concurrent.futures.Future[Any]]:
    """Start importing (in one worker thread) the `SLOW_IMPORTS` of ``protocols`` not loaded
    yet; the futures of those still loading (an import error is left for the client to hit)."""
    global _preloader
    pending = []
    for protocol in protocols:
        for module in SLOW_IMPORTS.get(protocol, ()):
            future = _preloads.get(module)
            if future is None:
                if module in sys.modules:
                    continue
                if _preloader is None:
                    _preloader = concurrent.futures.ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="hud-preload"
                    )
                future = _preloads[module] = _preloader.submit(importlib.import_module, module)
            if not future.done():
                pending.append(future)
    return pending


#: protocol -> factory registered by the caller (takes precedence over `DEFAULT_CLIENTS`).
CAPABILITY_CLIENTS: dict[str, ClientFactory] = {}


def register_capability_client(protocol: str, factory: ClientFactory) -> None:
    """Make `HudClient.open` return ``await factory(capability)`` for ``protocol``."""
    CAPABILITY_CLIENTS[protocol] = factory


def client_factory(protocol: str) -> ClientFactory | None:
    """The factory opening a client for ``protocol``, or None when none is known."""
    factory = CAPABILITY_CLIENTS.get(protocol)
    if factory is not None:
        return factory
    entry = DEFAULT_CLIENTS.get(protocol)
    if entry is None:
        return None
    module, name = entry
    cls = getattr(importlib.import_module(module), name)
    connect: ClientFactory = cls.connect
    return connect
