"""The browser environment: headless Chromium as the `browser` capability (DevTools Protocol).

On start the environment runs headless Chromium with a DevTools port on 127.0.0.1 and a small
web server for its task pages. Agents drive the browser through the control port's tunnel
(`run.client.open("browser")` returns `hud.clients.CDPClient`); the pages are only reachable
from inside the environment, i.e. through the browser.

Needs the Debian package chromium (or set HUD_CHROMIUM to a Chrome/Chromium binary).

One browser serves one task at a time (CDP clients attach to its first tab): `hud eval` gives
each rollout an environment process of its own; a shared `hud serve` wants one task at a time.

Try it:

    hud eval examples/browser/tasks.py oracle --all   # the oracle drives the browser: reward 1.0
    hud serve examples/browser/env.py                  # serve it for any agent
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from typing import Any
from urllib.parse import unquote

from hud import Environment
from hud.capabilities import Capability

env = Environment(name="browser")

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)

_state: dict[str, Any] = {}
#: Page id -> HTML served at /page/<id>; form submissions land in SUBMITTED[id].
PAGES: dict[str, str] = {}
SUBMITTED: dict[str, str] = {}


def chromium_binary() -> str:
    """The browser to run: $HUD_CHROMIUM, else chromium / google-chrome on PATH."""
    for name in (os.environ.get("HUD_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    raise RuntimeError("no Chromium found: install the chromium package or set HUD_CHROMIUM")


def _die_with_parent() -> None:
    """Ask Linux to stop the browser when the environment process dies (no orphans)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def start_chromium() -> tuple[asyncio.subprocess.Process, str, int]:
    """Chromium with a fresh profile; returns (process, profile dir, DevTools port)."""
    profile = tempfile.mkdtemp(prefix="hud-chromium-")
    proc = await asyncio.create_subprocess_exec(
        chromium_binary(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    # Chromium writes its port (then the browser target path) to DevToolsActivePort when ready.
    active = os.path.join(profile, "DevToolsActivePort")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        if proc.returncode is not None:
            break
        with contextlib.suppress(OSError, ValueError):
            with open(active) as f:
                lines = f.read().splitlines()
            if len(lines) >= 2:
                return proc, profile, int(lines[0])
        await asyncio.sleep(0.05)
    await stop_chromium(proc, profile)
    raise RuntimeError(f"Chromium did not open its DevTools port (exit code {proc.returncode})")


async def stop_chromium(proc: asyncio.subprocess.Process, profile: str) -> None:
    import signal

    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    shutil.rmtree(profile, ignore_errors=True)


# -- the task pages' web server (plain HTTP/1.1, one request a connection) ----------------------


async def _serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        method, target, *_ = [*lines[0].split(" "), "", ""]
        fields = (line.partition(":") for line in lines[1:] if line)
        headers = {k.strip().lower(): v.strip() for k, _, v in fields}
        length = min(int(headers.get("content-length") or 0), 65536)
        body = await reader.readexactly(length) if length else b""
        status, content_type, payload = _route(method, unquote(target), body)
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    except TimeoutError:
        pass
    finally:
        writer.close()


def _route(method: str, target: str, body: bytes) -> tuple[str, str, bytes]:
    path = target.split("?", 1)[0]
    parts = path.strip("/").split("/")
    if method == "GET" and len(parts) == 2 and parts[0] == "page" and parts[1] in PAGES:
        return "200 OK", "text/html; charset=utf-8", PAGES[parts[1]].encode()
    if method == "POST" and len(parts) == 2 and parts[0] == "submit" and parts[1] in PAGES:
        SUBMITTED[parts[1]] = body.decode("utf-8", "replace")
        return "200 OK", "application/json", b'{"ok": true}'
    return "404 Not Found", "text/plain", b"not found"


def publish(page_id: str, html_text: str) -> str:
    """Serve a page at /page/<page_id>; returns its URL as the browser sees it."""
    PAGES[page_id] = html_text
    return f"http://127.0.0.1:{_state['http_port']}/page/{page_id}"


@env.initialize
async def start_browser() -> None:
    server = await asyncio.start_server(_serve_http, "127.0.0.1", 0)
    _state.update(http=server, http_port=server.sockets[0].getsockname()[1])
    proc, profile, port = await start_chromium()
    _state.update(chromium=proc, profile=profile)
    env.add_capability(Capability.cdp(f"ws://127.0.0.1:{port}"))


@env.shutdown
async def stop_browser() -> None:
    proc, profile = _state.pop("chromium", None), _state.pop("profile", None)
    if proc is not None and profile is not None:
        await stop_chromium(proc, profile)
    server = _state.pop("http", None)
    if server is not None:
        server.close()


# -- read a value that only a script on the page reveals ----------------------------------------

READ_PAGE = """<!doctype html><html><head><title>Secret</title></head><body>
<h1>The answer appears below once the page's script has run.</h1>
<p>Answer: <span id="answer"></span></p>
<script>
setTimeout(function () {{
  document.getElementById("answer").textContent = String.fromCharCode.apply(null, {codes});
}}, 50);
</script></body></html>"""


async def _read_answer(run: Any) -> str:
    """Reference solution: open the page and read #answer with Runtime.evaluate."""
    browser = await run.client.open("browser")
    await browser.navigate(run.start_frame["url"])
    return await browser.evaluate(
        """new Promise(resolve => {
             const poll = () => {
               const text = document.getElementById("answer").textContent;
               text ? resolve(text) : setTimeout(poll, 20);
             };
             poll();
           })"""
    )


@env.template(solution=_read_answer)
async def read_answer():
    """Open a page in the browser and report the text its script writes into #answer."""
    secret = secrets.token_hex(5)
    codes = json.dumps([ord(c) for c in secret])  # not in the HTML as text
    url = publish(secrets.token_hex(8), READ_PAGE.format(codes=codes))
    answer = yield {
        "prompt": (
            f"Open {url} in the browser (the `browser` capability, Chrome DevTools Protocol) "
            "and answer with the text shown after 'Answer:'."
        ),
        "url": url,
    }
    yield 1.0 if str(answer).strip() == secret else 0.0


# -- fill in and submit a form -------------------------------------------------------------------

FORM_PAGE = """<!doctype html><html><head><title>Sign up</title></head><body>
<form id="form"><label>Name <input id="name" name="name"></label>
<button id="submit" type="submit">Submit</button></form><p id="status"></p>
<script>
document.getElementById("form").addEventListener("submit", async function (event) {{
  event.preventDefault();
  await fetch("/submit/{page_id}", {{method: "POST", body: document.getElementById("name").value}});
  document.getElementById("status").textContent = "Thanks!";
}});
</script></body></html>"""


async def _submit_form(run: Any) -> str:
    """Reference solution: type the name into the form and click Submit, via Runtime.evaluate."""
    browser = await run.client.open("browser")
    await browser.navigate(run.start_frame["url"])
    name = json.dumps(run.args["name"])
    await browser.evaluate(
        f"""document.getElementById("name").value = {name};
            document.getElementById("submit").click();"""
    )
    await browser.evaluate(
        """new Promise(resolve => {
             const poll = () => document.getElementById("status").textContent
               ? resolve(true) : setTimeout(poll, 20);
             poll();
           })"""
    )
    return "submitted"


@env.template(solution=_submit_form)
async def submit_form(name: str):
    """Fill in a web form with a name and submit it."""
    page_id = secrets.token_hex(8)
    url = publish(page_id, FORM_PAGE.format(page_id=page_id))
    yield {
        "prompt": (
            f"Open {url} in the browser (the `browser` capability), enter the name "
            f"{name!r} in the form and submit it. Then answer 'submitted'."
        ),
        "url": url,
    }
    yield 1.0 if SUBMITTED.pop(page_id, None) == name else 0.0


if __name__ == "__main__":
    asyncio.run(env.serve())
