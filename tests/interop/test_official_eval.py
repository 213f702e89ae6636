"""The official `hud eval --runtime tcp://…` driving our server, with the official
`openai_compatible` agent talking to a local fake of the chat-completions API."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hud.eval.task import Task

from .helpers import ENVS, ServerProcess, peer_cli, requires_peer, start_server

pytestmark = requires_peer

PLAIN = ENVS / "plain"


class FakeChat(BaseHTTPRequestHandler):
    """Answers "What is A + B?" correctly, except for 3 + 4 (so one run scores 0)."""

    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChat.requests.append({"path": self.path, **body})
        text = json.dumps(body["messages"])
        m = re.search(r"What is (\d+) \+ (\d+)", text)
        answer = "0" if not m or m.groups() == ("3", "4") else str(int(m[1]) + int(m[2]))
        data = json.dumps(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeChat)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def ours() -> Iterator[ServerProcess]:
    server = start_server("ours", PLAIN / "env.py")
    yield server
    server.stop()


def test_hud_eval_runtime_tcp(provider: str, ours: ServerProcess) -> None:
    FakeChat.requests.clear()
    proc = peer_cli(
        "eval", str(PLAIN / "tasks.json"), "openai_compatible",
        "--runtime", ours.url,
        "--config", f"base_url={provider}", "--config", "api_key=k", "--model", "fake",
        "--all", "--yes", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["run_count"] == 2 and report["error_count"] == 0
    assert report["mean_reward"] == 0.5
    rows = json.loads((PLAIN / "tasks.json").read_text())
    slugs = [Task.model_validate(row).slug for row in rows]
    assert [(r["slug"], r["reward"], r["is_error"]) for r in report["runs"]] == [
        (slugs[0], 1.0, False),
        (slugs[1], 0.0, False),
    ]
    # The prompts reached the model exactly as our server produced them.
    prompts = sorted(json.dumps(r["messages"]) for r in FakeChat.requests)
    assert len(prompts) == 2
    assert "What is 2 + 2? Reply with the number only." in prompts[0] + prompts[1]
    assert all(
        r["path"] == "/v1/chat/completions" and r["model"] == "fake" for r in FakeChat.requests
    )
