"""The platform behind TLS, as it is deployed for real (a terminating proxy in front of
`hud platform serve`): our CLI deploys over https:// (its build-log stream over wss://) and runs a
`--runtime hud` rollout whose tunnel is a wss:// WebSocket, trusting the proxy's certificate
through ``SSL_CERT_FILE``. The proxy records every request it decrypted, so the test sees that
the upload, the log stream and the tunnel all went through TLS."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certs import OPENSSL, self_signed
from tests.platform.deploy_helpers import (
    cli_env,
    python_base,
    remove_platform_images,
    scaffold,
    team_key,
)
from tests.platform.helpers import Platform, make_home, requires_extra, run_cli

pytestmark = [requires_extra]


class TLSProxy:
    """Terminates TLS on a loopback port and pipes the plain bytes to ``upstream``; keeps the
    first line of each decrypted connection (the HTTP request line)."""

    def __init__(self, upstream: tuple[str, int], cert: Path, key: Path) -> None:
        self.upstream = upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.requests: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TLSProxy:
        self.thread.start()
        assert self.ready.wait(10), "the TLS proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        )
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        answers = asyncio.ensure_future(pipe(up_reader, writer))
        try:
            await self._requests(reader, up_writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            up_writer.close()
            await answers

    async def _requests(self, reader: asyncio.StreamReader, up: asyncio.StreamWriter) -> None:
        """Each request head gets ``X-Forwarded-Proto: https``, as a real proxy adds, so the
        platform's absolute URLs (the upload slot) say https; an upgraded connection (a
        WebSocket) is piped as it is from then on."""
        while head := await reader.readuntil(b"\r\n\r\n"):
            self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            fields = head.lower()
            up.write(head[:-2] + b"x-forwarded-proto: https\r\n\r\n")
            if b"\r\nupgrade:" in fields:
                await pipe(reader, up)
                return
            if b"transfer-encoding: chunked" in fields:
                while True:
                    size_line = await reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";")[0], 16)
                    up.write(size_line + await reader.readexactly(size + 2))
                    if size == 0:
                        break
            else:
                for line in fields.split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        up.write(await reader.readexactly(int(line.split(b":")[1])))
            await up.drain()


async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        dst.close()


@pytest.fixture(scope="module")
def tls_platform() -> Iterator[tuple[Platform, TLSProxy, Path]]:
    if not OPENSSL:
        pytest.skip("openssl is not installed (Debian package openssl)")
    base = Path(tempfile.mkdtemp(prefix="hud-platform-tls-"))
    platform = Platform("sqlite", base / "data")
    platform.start()
    cert, key = self_signed(base)
    host, _, port = platform.url.removeprefix("http://").partition(":")
    try:
        with TLSProxy((host, int(port)), cert, key) as proxy:
            yield platform, proxy, cert
    finally:
        remove_platform_images(platform)
        platform.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_deploy_and_runtime_tunnel_over_https_and_wss(
    tls_platform: tuple[Platform, TLSProxy, Path],
) -> None:
    platform, proxy, cert = tls_platform
    python_base()
    work = Path(tempfile.mkdtemp(prefix="hud-tls-"))
    try:
        key = team_key(platform)
        home = make_home()
        project = scaffold(work, "demo_env")
        secure = f"https://127.0.0.1:{proxy.port}"
        env = cli_env(platform, key, home)
        env.update({name: value.replace(platform.url, secure) for name, value in env.items()})
        env["SSL_CERT_FILE"] = str(cert)
        assert env["HUD_API_URL"] == secure

        deployed = run_cli(["deploy", str(project), "--yes"], env, cwd=project, timeout=600,
                           ours=True)  # fmt: skip
        assert deployed.returncode == 0, (deployed.stdout + deployed.stderr)[-3000:]
        assert any("/v2/builds/" in r and "/logs" in r for r in proxy.requests), proxy.requests

        rows = [{"env": "demo_env", "id": "count", "args": {"sentence": "banana", "letter": "a"},
                 "slug": "count-a"}]  # fmt: skip
        (project / "rows.json").write_text(json.dumps(rows))
        ran = run_cli(["eval", "rows.json", "oracle", "--runtime", "hud", "--all", "--yes",
                       "--json"], env, cwd=project, timeout=600, ours=True)  # fmt: skip
        assert ran.returncode == 0, (ran.stdout + ran.stderr)[-3000:]
        assert [r["reward"] for r in json.loads(ran.stdout)["runs"]] == [1.0]
        assert any(r.startswith("GET /runtime/tunnels/") for r in proxy.requests), proxy.requests

        # without the certificate the same command fails with one clear line, no traceback
        untrusted = {k: v for k, v in env.items() if k != "SSL_CERT_FILE"}
        refused = run_cli(["eval", "rows.json", "oracle", "--runtime", "hud", "--all", "--yes"],
                          untrusted, cwd=project, timeout=600, ours=True)  # fmt: skip
        assert refused.returncode != 0
        assert "Traceback" not in refused.stderr, refused.stderr[-3000:]
        assert "certificate" in (refused.stdout + refused.stderr).lower(), refused.stderr[-3000:]
    finally:
        shutil.rmtree(work, ignore_errors=True)
