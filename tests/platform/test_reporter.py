"""Our reporter against small plain-http servers of its own (real sockets, stdlib servers):
a platform without the batch endpoint gets every report one by one; a server that drops each
kept-alive connection after answering still gets every batch."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hud.platform.client.reporter import Reporter


@contextmanager
def server(*, batches: bool, drop_connections: bool = False) -> Iterator[tuple[str, list[Any]]]:
    """A server answering every report POST with 200, recording (path, body); ``/v2/reports``
    is a 404 unless ``batches``; with ``drop_connections`` it closes each connection after
    its answer without saying so (as a keep-alive timeout does)."""
    seen: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            if self.path == "/v2/reports" and not batches:
                reply = b'{"detail":"Not Found"}'
                self.send_response(404)
            elif self.path == "/v2/reports":
                seen.append((self.path, body))
                reply = json.dumps({"results": [{"status": 200}] * len(body["items"])}).encode()
                self.send_response(200)
            else:
                seen.append((self.path, body))
                reply = b"{}"
                self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            if drop_connections:
                self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _span(trace: str) -> dict[str, Any]:
    return {"name": "step", "trace_id": trace, "span_id": "a" * 16, "attributes": {}}


def test_reporter_falls_back_to_one_by_one_reports() -> None:
    with server(batches=False) as (url, seen):
        reporter = Reporter(url, f"{url}/telemetry", "k", flush_interval=0.05)
        trace = uuid.uuid4().hex
        reporter.trace_enter(trace, task_slug="t")
        reporter.span(trace, _span(trace))
        reporter.trace_exit(trace, status="completed", reward=1.0)
        stats = reporter.close(10)
    assert (stats.sent, stats.dropped, stats.pending) == (3, 0, 0), stats
    assert sorted(path for path, _ in seen) == [
        f"/telemetry/trace/{trace}/telemetry-upload",
        f"/v2/trace/{trace}/enter",
        f"/v2/trace/{trace}/exit",
    ]


def test_reporter_reconnects_when_kept_alive_connection_dropped() -> None:
    with server(batches=True, drop_connections=True) as (url, seen):
        reporter = Reporter(url, f"{url}/telemetry", "k", flush_interval=0.05)
        traces = [uuid.uuid4().hex for _ in range(3)]
        for trace in traces:  # one flush each, so each batch finds the last connection closed
            reporter.trace_enter(trace, task_slug="t")
            reporter.trace_exit(trace, status="completed", reward=1.0)
            deadline = time.monotonic() + 10
            while len(seen) <= traces.index(trace) and time.monotonic() < deadline:
                time.sleep(0.02)
        stats = reporter.close(10)
    assert (stats.sent, stats.dropped, stats.retried) == (6, 0, 0), stats
    assert [path for path, _ in seen] == ["/v2/reports"] * 3
    reported = [item["id"] for _, body in seen for item in body["items"]]
    assert reported == [t for t in traces for _ in range(2)]


def test_values_json_lacks_are_reported_and_reporting_goes_on() -> None:
    """orjson refuses integers past 64 bits and keys that are not strings; the batch then goes
    out through the standard encoder (``str`` for what it cannot encode) instead of stopping
    the reporter, and later reports still go."""
    with server(batches=True) as (url, seen):
        reporter = Reporter(url, f"{url}/telemetry", "k", flush_interval=0.05)
        odd, later = uuid.uuid4().hex, uuid.uuid4().hex
        metadata = {"big": 2**70, "tags": {1: "one"}, "when": {"at"}}
        reporter.trace_exit(odd, status="completed", reward=1.0, metadata=metadata)
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        reporter.trace_exit(later, status="completed", reward=0.5)
        stats = reporter.close(10)
    assert (stats.sent, stats.dropped, stats.pending) == (2, 0, 0), stats
    items = [item for _, body in seen for item in body["items"]]
    assert [item["id"] for item in items] == [odd, later]
    assert items[0]["body"]["metadata"] == {"big": 2**70, "tags": {"1": "one"}, "when": "{'at'}"}


def test_many_producer_threads_lose_no_report() -> None:
    """Producers append without a lock: 8 threads x 500 reports all arrive, each once."""
    with server(batches=True) as (url, seen):
        reporter = Reporter(url, f"{url}/telemetry", "k", flush_interval=0.01)
        ids = [[uuid.uuid4().hex for _ in range(500)] for _ in range(8)]

        def produce(mine: list[str]) -> None:
            for trace in mine:
                reporter.trace_enter(trace, task_slug="t")

        threads = [threading.Thread(target=produce, args=(mine,)) for mine in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = reporter.close(30)
    assert (stats.sent, stats.dropped, stats.pending) == (4000, 0, 0), stats
    reported = [item["id"] for _, body in seen for item in body["items"]]
    assert sorted(reported) == sorted(t for mine in ids for t in mine)
