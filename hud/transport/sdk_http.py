"""HTTP clients for the provider SDKs (``openai``, ``anthropic``) that share one TLS context.

Each SDK client builds its own HTTP client, and that builds a TLS context by loading the CA
certificates: about 25 ms of CPU, paid by every rollout, as an agent makes a client per rollout.
`http_client` gives a client the SDK's own default HTTP client, with a TLS context made once per
process (by the SDK's HTTP library, with its defaults) and shared. The context is made again when
``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` changes, as the SDK's default would read them.
"""

from __future__ import annotations

import importlib
import os
import ssl
import threading
from typing import Any

_lock = threading.Lock()
_contexts: dict[tuple[str, str | None, str | None], ssl.SSLContext] = {}


def _library(sdk: Any) -> Any:
    """The HTTP library ``sdk``'s default client is made with (``httpx`` or a fork of it)."""
    for cls in sdk.DefaultAsyncHttpxClient.__mro__:
        if cls.__name__ == "AsyncClient":
            return importlib.import_module(cls.__module__.split(".")[0])
    raise TypeError(f"{sdk.__name__}.DefaultAsyncHttpxClient is not an AsyncClient")


def tls_context(sdk: Any) -> ssl.SSLContext:
    """The TLS context ``sdk``'s default HTTP client would make, made once per library and
    certificate setting."""
    library = _library(sdk)
    key = (library.__name__, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = library.create_ssl_context()
        return context


def http_client(sdk: Any, **kwargs: Any) -> Any:
    """``sdk.DefaultAsyncHttpxClient`` (the SDK's defaults) with the shared `tls_context`."""
    return sdk.DefaultAsyncHttpxClient(verify=tls_context(sdk), **kwargs)
