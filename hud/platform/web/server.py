"""`ViewServer`: the viewer over local job records on a small asyncio HTTP/1.1 server (standard
library only, so ``hud view`` runs on the base install). GET and HEAD only; one request per
connection read with bounded sizes and a timeout; the pages are those of the platform under
the same ``/web`` paths."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from hud.platform.urls import WEB_PREFIX
from hud.platform.web.data import ViewSource
from hud.platform.web.kit import Ctx
from hud.platform.web.local import LocalSource
from hud.platform.web.routes import Reply, dispatch, html_reply

log = logging.getLogger("hud.view")

MAX_HEAD = 16 * 1024
READ_TIMEOUT = 30.0
_REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


class ViewServer:
    """Serves ``source`` (default: the records in ``jobs_dir``) at ``http://host:port/web/``."""

    def __init__(
        self,
        jobs_dir: Path | None = None,
        *,
        source: ViewSource | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if source is None:
            if jobs_dir is None:
                raise ValueError("give jobs_dir or source")
            source = LocalSource(jobs_dir)
        self.source = source
        self.host = host
        self.port = port
        self.ctx = Ctx(base=WEB_PREFIX, platform=False, title="hud view")
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{WEB_PREFIX}/jobs"

    async def start(self) -> ViewServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
            return
        method = "GET"
        try:
            if len(head) > MAX_HEAD:
                raise ValueError("header too large")
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _version = line.split(" ", 2)
            reply = await self.handle(method, target)
        except ValueError:
            reply = html_reply("bad request", 400)
        except Exception as exc:  # a page must never take the server down
            log.error("GET failed: %s: %s", type(exc).__name__, exc)
            reply = html_reply("internal error", 500)
        try:
            await self._write(writer, reply, head_only=method == "HEAD")
        except OSError:
            pass
        finally:
            writer.close()

    async def handle(self, method: str, target: str) -> Reply:
        if method not in ("GET", "HEAD"):
            return Reply(405, b"", headers={"Allow": "GET, HEAD"})
        parts = urlsplit(target)
        path = parts.path
        query = dict(parse_qsl(parts.query))
        if path in ("", "/", WEB_PREFIX, WEB_PREFIX + "/"):
            return Reply(302, b"", headers={"Location": WEB_PREFIX + "/jobs"})
        if not path.startswith(WEB_PREFIX + "/"):
            return await dispatch(self.source, self.ctx, "/__missing__", {})
        return await dispatch(self.source, self.ctx, path[len(WEB_PREFIX) :], query)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, reply: Reply, *, head_only: bool) -> None:
        reason = _REASONS.get(reply.status, "OK")
        lines = [f"HTTP/1.1 {reply.status} {reason}"]
        headers = {
            "Content-Type": reply.content_type,
            "Content-Length": str(len(reply.body)),
            "Connection": "close",
            **reply.headers,
        }
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head_only:
            writer.write(reply.body)
        await writer.drain()
