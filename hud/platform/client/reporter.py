"""Run reporting to a platform (spec platform.md §5), in the background.

`Reporter` methods only enqueue and return at once; a worker thread with its own event loop
drains the queue every ``flush_interval`` seconds: job and trace enters, span uploads (one
request per trace, at most ``MAX_SPANS`` spans each) and trace exits, up to ``concurrency`` at a
time — or, when the platform has our batch endpoint (``POST /v2/reports``), everything drained
in one request per ``BATCH_ITEMS`` reports (the official platform's endpoints are the
fallback). The platform accepts these in any order, so nothing waits on anything else.

A failed send is retried with backoff (network errors, 429 and 5xx) while fewer than
``max_pending`` items wait; past that, or on another 4xx, the item is dropped and counted. So a
slow or dead platform never slows the eval or costs its local record, memory stays bounded, and
once the platform is back the queue drains. `close` flushes for at most ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

log = logging.getLogger("hud.platform.report")

MAX_SPANS = 100
#: Reports per ``POST /v2/reports`` request (the platform takes up to 2,000): few requests, as
#: each one costs the platform (and the eval's process, the two sharing the machine) more than
#: its reports do.
BATCH_ITEMS = 1000
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}
#: At close, items still failing are dropped once the platform has not answered for this long.
GIVE_UP_AFTER = 10.0


@dataclass
class _Item:
    kind: str  # job | enter | span | exit
    target: str  # job id or trace id (32 hex)
    body: Any
    attempts: int = 0
    not_before: float = 0.0


@dataclass
class ReportStats:
    sent: int = 0
    retried: int = 0
    dropped: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)


class Reporter:
    def __init__(
        self,
        api_url: str,
        telemetry_url: str,
        api_key: str,
        *,
        concurrency: int = 4,
        flush_interval: float = 1.0,
        max_pending: int = 20_000,
        timeout: float = 10.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.telemetry_url = telemetry_url.rstrip("/")
        self._key = api_key
        self.concurrency = concurrency
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.timeout = timeout
        self.stats = ReportStats()
        #: Reports queued by the producers (appended without a lock, drained by the worker).
        self._queue: deque[_Item] = deque()
        #: Failed reports waiting for their retry (the worker's alone).
        self._later: list[_Item] = []
        self._lock = threading.Lock()
        #: The worker's loop and its wake-up event (set by `close`).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._last_success: float | None = None
        #: Whether the platform takes batched reports (``POST /v2/reports``); None = untried.
        self._batched: bool | None = None
        #: The worker's connections: batches to a plain-http platform, and httpx's client.
        self._plain: _PlainHTTP | None = None
        self._http: httpx.AsyncClient | None = None

    # -- the producer side (any thread; never blocks) -------------------------------------
    def job_enter(
        self, job_id: str, *, name: str, group: int = 1, taskset_id: str | None = None
    ) -> None:
        body = {"name": name, "group": group, "taskset_id": taskset_id}
        self._put(_Item("job", _hex(job_id), _drop_none(body)))

    def trace_enter(
        self,
        trace_id: str,
        *,
        job_id: str | None = None,
        group_id: str | None = None,
        task_slug: str | None = None,
        model: str | None = None,
        parent_trace_id: str | None = None,
    ) -> None:
        body = {
            "job_id": _hex(job_id) if job_id else None,
            "group_id": group_id,
            "task_slug": task_slug,
            "model": model,
            "parent_trace_id": parent_trace_id,
        }
        self._put(_Item("enter", _hex(trace_id), _drop_none(body)))

    def span(self, trace_id: str, span: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """Queue a span; ``span`` may be a function making it, called once in the reporter's
        thread (so the caller's loop does not pay for serialising it)."""
        self._put(_Item("span", _hex(trace_id), span))

    def trace_exit(
        self,
        trace_id: str,
        *,
        status: str,
        reward: float | None = None,
        error: str | None = None,
        evaluation_result: Any = None,
        stop_reason: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        body = {
            "status": status,
            "reward": reward,
            "error": error,
            "evaluation_result": evaluation_result,
            "stop_reason": stop_reason,
            "metadata": metadata,
        }
        self._put(_Item("exit", _hex(trace_id), _drop_none(body)))

    def _put(self, item: _Item) -> None:
        # No lock on this path (the eval's loop calls it for every event): a deque's append
        # is atomic, and the worker drains with popleft. ``max_pending`` is a soft bound.
        if self._closing:
            return
        if len(self._queue) + len(self._later) >= self.max_pending:
            self._dropped(1)
            return
        self._queue.append(item)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(
                    target=self._run, name="hud-platform-reporter", daemon=True
                )
                self._thread.start()

    def _dropped(self, count: int) -> None:
        with self._lock:
            self.stats.dropped += count

    def close(self, timeout: float = 10.0) -> ReportStats:
        """Send what is queued (for at most ``timeout`` s), then stop; returns the figures."""
        with self._lock:
            self._closing = True
            thread = self._thread
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the worker's loop already closed
                loop.call_soon_threadsafe(wake.set)
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self.stats.pending = len(self._queue) + len(self._later)
            self._queue.clear()
            self._later.clear()
        return self.stats

    # -- the worker -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # never let reporting take anything down
            log.warning("platform reporting stopped: %s", exc)

    async def _main(self) -> None:
        wake = asyncio.Event()
        with self._lock:
            self._loop, self._wake = asyncio.get_running_loop(), wake
        # Batches to a plain-http platform (the self-hosted default) go over one keep-alive
        # connection of the standard library's: an httpx client (its transport's imports, its
        # set-up, its per-request work) would cost the eval's process more than the reports.
        if self.api_url.startswith("http://"):
            self._plain = _PlainHTTP(f"{self.api_url}/v2/reports", self._key, self.timeout)
        sem = asyncio.Semaphore(self.concurrency)
        try:
            while True:
                closing = self._closing
                batch = self._take()
                if batch:
                    requests = self._requests(batch)
                    if self._batched is not False:
                        requests = await self._send_batched(requests)
                    if requests:
                        http = self._client()
                        await asyncio.gather(*(self._send(http, sem, r) for r in requests))
                left = len(self._queue) + len(self._later)
                if closing and not left:
                    return
                if closing and left and not batch:
                    await asyncio.sleep(0.05)  # only backing-off retries left
                    continue
                if not closing:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self.flush_interval)
        finally:
            if self._plain is not None:
                self._plain.close()
            if self._http is not None:
                await self._http.aclose()

    def _client(self) -> httpx.AsyncClient:
        """The httpx client (made on first use): for a TLS platform, and for one-by-one
        reports (a platform without our batch endpoint)."""
        if self._http is None:
            limits = httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            )
            # Plain-http platforms need no TLS context: building one (loading the CA bundle)
            # would cost the eval's process tens of milliseconds.
            plain = all(u.startswith("http://") for u in (self.api_url, self.telemetry_url))
            self._http = httpx.AsyncClient(
                headers={"Authorization": f"Bearer {self._key}"},
                timeout=self.timeout,
                limits=limits,
                verify=not plain,
            )
        return self._http

    async def _post_batch(self, body: bytes) -> tuple[int, bytes]:
        """``POST /v2/reports`` with ``body``: the reply's status and content. Raises
        `httpx.HTTPError`, `OSError` or `http.client.HTTPException` when no reply came."""
        if self._plain is not None:
            return self._plain.post(body)
        reply = await self._client().post(
            f"{self.api_url}/v2/reports",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        return reply.status_code, reply.content

    def _take(self) -> list[_Item]:
        queue = self._queue
        ready = [queue.popleft() for _ in range(len(queue))]
        if self._later:
            now = time.monotonic()
            ready += [i for i in self._later if i.not_before <= now]
            self._later = [i for i in self._later if i.not_before > now]
        return ready

    async def _send(self, http: httpx.AsyncClient, sem: asyncio.Semaphore, req: _Request) -> None:
        async with sem:
            try:
                reply = await http.post(req.url(self), json=req.body)
                status = reply.status_code
            except httpx.HTTPError as exc:
                status, detail = 0, f"{type(exc).__name__}: {exc}"
            else:
                detail = f"HTTP {status}"
        if 200 <= status < 300:
            self.stats.sent += len(req.items)
            self._last_success = time.monotonic()
            return
        if status == 0 or status in RETRYABLE:
            self._retry(req.items, detail)
            return
        self._dropped(len(req.items))
        self._note(f"{req.items[0].kind} {req.items[0].target}: {detail}")

    async def _send_batched(self, requests: list[_Request]) -> list[_Request]:
        """Send ``requests`` as ``POST /v2/reports`` batches; returns those left to send one
        by one (all of them when the platform has no batch endpoint)."""
        for start in range(0, len(requests), BATCH_ITEMS):
            chunk = requests[start : start + BATCH_ITEMS]
            payload = {"items": [r.report_item() for r in chunk]}
            items = [item for r in chunk for item in r.items]
            try:
                status, content = await self._post_batch(_encode(payload))
            except (httpx.HTTPError, OSError, http.client.HTTPException) as exc:
                self._retry(items, f"{type(exc).__name__}: {exc}")
                continue
            if status in (404, 405) and self._batched is None:
                self._batched = False
                return requests[start:]
            if status in RETRYABLE:
                self._retry(items, f"HTTP {status}")
                continue
            try:
                results = json.loads(content)["results"] if 200 <= status < 300 else None
            except (ValueError, KeyError, TypeError):
                results = None
            if not isinstance(results, list) or len(results) != len(chunk):
                self._dropped(len(items))
                self._note(f"reports: HTTP {status}")
                continue
            self._batched = True
            self._last_success = time.monotonic()
            for request, result in zip(chunk, results, strict=True):
                code = result.get("status") if isinstance(result, dict) else None
                if code == 200:
                    self.stats.sent += len(request.items)
                elif code in RETRYABLE:
                    self._retry(request.items, f"HTTP {code}")
                else:
                    self._dropped(len(request.items))
                    self._note(f"{request.kind} {request.target}: {result}")
        return []

    def _requests(self, items: list[_Item]) -> list[_Request]:
        """`_requests` after making the spans given as functions, once each (the item keeps
        the span, so a retry sends the same one)."""
        made: list[_Item] = []
        for item in items:
            if callable(item.body):
                try:
                    item.body = item.body()
                except Exception as exc:  # a span that cannot be made is dropped alone
                    self._dropped(1)
                    self._note(f"span {item.target}: {type(exc).__name__}: {exc}")
                    continue
            made.append(item)
        return _requests(made)

    def _retry(self, items: list[_Item], detail: str) -> None:
        now = time.monotonic()
        # While closing, keep retrying a platform that answered lately (it may be restarting);
        # give up on one that has not answered for a while (close stays quick when it is dead).
        alive = self._last_success is not None and now - self._last_success < GIVE_UP_AFTER
        dropped = 0
        for item in items:
            if self._closing and item.attempts >= 2 and not alive:
                dropped += 1
                continue
            if len(self._queue) + len(self._later) >= self.max_pending:
                dropped += 1
                continue
            item.attempts += 1
            item.not_before = now + min(
                0.5 * 2 ** (item.attempts - 1), 2.0 if self._closing else 10.0
            )
            self._later.append(item)
            self.stats.retried += 1
        if dropped:
            self._dropped(dropped)
        self._note(detail)

    def _note(self, text: str) -> None:
        if len(self.stats.errors) < 20:
            self.stats.errors.append(text)
            log.debug("platform report: %s", text)


class _PlainHTTP:
    """One keep-alive HTTP/1.1 connection posting JSON to ``url`` (plain http), blocking the
    reporter's own thread for the request (the socket waits without the GIL)."""

    def __init__(self, url: str, key: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        """The reply's status and content; raises `OSError` or `http.client.HTTPException`
        when none came. A kept-alive connection the server has closed meanwhile is replaced
        once and the batch sent again (reports are idempotent upserts)."""
        while True:
            reused = self._conn is not None
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("POST", self.path, body, self.headers)
                reply = self._conn.getresponse()
                return reply.status, reply.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if not reused:
                    raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class _Request:
    kind: str
    target: str
    body: Any
    items: list[_Item]

    def report_item(self) -> dict[str, Any]:
        if self.kind == "span":
            return {"kind": "spans", "id": self.target, "body": self.body["telemetry"]}
        return {"kind": self.kind, "id": self.target, "body": self.body}

    def url(self, reporter: Reporter) -> str:
        if self.kind == "job":
            return f"{reporter.api_url}/v2/trace/job/{self.target}/enter"
        if self.kind == "span":
            return f"{reporter.telemetry_url}/trace/{self.target}/telemetry-upload"
        return f"{reporter.api_url}/v2/trace/{self.target}/{self.kind}"


def _requests(items: list[_Item]) -> list[_Request]:
    """One request per job/enter/exit item; spans merged per trace, ``MAX_SPANS`` a request."""
    out: list[_Request] = []
    spans: dict[str, list[_Item]] = {}
    for item in items:
        if item.kind == "span":
            spans.setdefault(item.target, []).append(item)
        else:
            out.append(_Request(item.kind, item.target, item.body, [item]))
    for target, group in spans.items():
        for start in range(0, len(group), MAX_SPANS):
            chunk = group[start : start + MAX_SPANS]
            body = {"telemetry": [i.body for i in chunk]}
            out.append(_Request("span", target, body, chunk))
    return out


_HEX32 = re.compile(r"[0-9a-f]{32}")


def _hex(value: str) -> str:
    """A UUID as 32 lowercase hex digits (any other text as is). Ids already in that form, as
    the eval's trace ids are, skip parsing: this runs on the eval's loop for every report."""
    text = str(value)
    if _HEX32.fullmatch(text):
        return text
    try:
        return uuid.UUID(text).hex
    except ValueError:
        return text


def _encode(payload: Any) -> bytes:
    """``payload`` as JSON: orjson's encoder (an order of magnitude quicker than the standard
    library's, on the eval's machine), the standard one with ``str`` for what it refuses
    (integers past 64 bits, keys that are not strings, unknown types)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, default=str).encode()


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}
