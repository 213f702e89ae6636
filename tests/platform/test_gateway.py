"""The inference gateway (spec platform.md §8) on a live `hud platform serve`, on SQLite and
PostgreSQL: `hud eval tasks.py <agent> --gateway` with our CLI and the official 0.6.21 CLI, for
the four agents, each against a local fake of its provider (reward 1.0 on a workspace task
solved through the shell); usage on the trace and the job; HUD-key auth; upstream keys in no
reply, log or trace; retries honouring Retry-After; per-team rate limits and budgets."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents.fakes import Fail, FakeProvider, Reply
from tests.platform.gateway_helpers import (
    AGENTS,
    SUFFIX,
    add_upstream,
    solve_with_shell,
    unique,
    write_project,
)
from tests.platform.helpers import (
    HAVE_PEER,
    PEER_HUD,
    Platform,
    base_env,
    make_home,
    requires_extra,
    run_cli,
)

pytestmark = requires_extra

#: Every upstream key handed to the platform in this module (none may ever come back).
SECRETS: list[str] = []
#: Every reply and CLI output seen by the tests (grepped for those keys at the end).
SEEN: list[str] = []


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(handler=solve_with_shell) as provider:
        yield provider


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="hud-gw-project-"))
    yield write_project(root / "proj")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def routed(platform: Platform, fake: FakeProvider) -> dict[str, Any]:
    """One upstream per provider (all the same fake), each with a key and a priced model."""
    models = {}
    for provider in AGENTS:
        model = unique(f"gw-{provider}")
        secret = f"sk-upstream-{provider}-{uuid.uuid4().hex}"
        SECRETS.append(secret)
        add_upstream(platform, provider, fake.url + SUFFIX[provider], model, key=secret,
                     extra=("--price-in", "3", "--price-out", "15"))  # fmt: skip
        models[provider] = (model, secret)
    return {"models": models, "key": platform.new_key("--name", "gateway-eval")}


def eval_through_gateway(
    platform: Platform, key: str, project: Path, agent: str, model: str, *, ours: bool
) -> dict[str, Any]:
    env = {**base_env(make_home()), **platform.client_env(key)}
    argv = ["eval", "tasks.py", agent, "--gateway", "--model", model, "--all", "--yes", "--json"]
    proc = run_cli(argv, env, cwd=project, ours=ours, timeout=300)
    SEEN.extend([proc.stdout, proc.stderr])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index("{") :])


def job_and_traces(platform: Platform, key: str, result: dict[str, Any]) -> tuple[str, list[str]]:
    job_id = result.get("job_id") or Path(result["record"]).name
    with platform.api(key) as api:
        reply = api.get(f"/v2/jobs/{job_id}/traces", params={"limit": 100})
        assert reply.status_code == 200, reply.text
        SEEN.append(reply.text)
        return job_id, [t["id"] for t in reply.json()["items"]]


# The official CLI's full matrix runs on SQLite, on PostgreSQL only openai_compatible (the
# gateway's database use is the same on both; ours covers PostgreSQL).
@pytest.mark.cases(
    lambda cli, provider, platform: (
        cli == "ours" or platform == "sqlite" or provider == "openai_compatible"
    )
)
@pytest.mark.parametrize("cli", ["ours", "official"])
@pytest.mark.parametrize("provider", list(AGENTS))
def test_eval_through_the_gateway(
    cli: str,
    provider: str,
    platform: Platform,
    routed: dict[str, Any],
    fake: FakeProvider,
    project: Path,
) -> None:
    if cli == "official" and not HAVE_PEER:
        pytest.skip(f"official hud not installed at {PEER_HUD} (make peer)")
    model, secret = routed["models"][provider]
    key = routed["key"]
    before = len(fake.requests)
    result = eval_through_gateway(
        platform, key, project, AGENTS[provider], model, ours=cli == "ours"
    )
    rewards = [run["reward"] for run in result["runs"]]
    assert rewards == [1.0], json.dumps(result)[:2000]

    calls = [r for r in fake.requests[before:] if model in json.dumps(r.body) or model in r.path]
    assert len(calls) >= 2  # the tool call, then the answer after its result
    for call in calls:
        sent = {k: v for k, v in call.headers.items() if k in ("authorization", "x-api-key",
                                                              "x-goog-api-key")}  # fmt: skip
        assert key not in json.dumps(sent)  # the HUD key stays at the gateway
        assert secret in json.dumps(sent)  # the upstream's own key went upstream
        assert "trace-id" not in call.headers
    if provider == "gemini" and cli == "official":
        assert all(":streamGenerateContent" in c.path for c in calls)  # streamed (SSE)
    if provider == "anthropic" and cli == "official":
        assert all(c.body.get("stream") is True for c in calls)

    job_id, trace_ids = job_and_traces(platform, key, result)
    assert len(trace_ids) == 1
    with platform.api(key) as api:
        trace = api.get(f"/v2/trace/{trace_ids[0]}").json()
        job = api.get(f"/v2/jobs/{job_id}").json()
        SEEN.extend([json.dumps(trace), json.dumps(job)])
    usage = trace["usage"]
    assert usage["calls"] == len(calls)
    assert usage["input_tokens"] == 21 * len(calls) and usage["output_tokens"] == 9 * len(calls)
    assert usage["cost"] == pytest.approx(len(calls) * (21 * 3 + 9 * 15) / 1e6)
    assert job["usage"]["calls"] == usage["calls"]
    assert job["usage"]["input_tokens"] == usage["input_tokens"]


def test_models_catalog_lists_every_routed_model(platform: Platform, routed: dict[str, Any]):
    with platform.api(routed["key"]) as api:
        reply = api.get("/v2/models", params={"limit": 100})
    assert reply.status_code == 200
    SEEN.append(reply.text)
    items = {m["model_name"]: m for m in reply.json()["items"]}
    types = {"anthropic": "claude", "openai": "openai", "gemini": "gemini",
             "openai_compatible": "openai_compatible"}  # fmt: skip
    for provider, (model, _secret) in routed["models"].items():
        assert items[model]["sdk_agent_type"] == types[provider]
        assert items[model]["provider"] == {"name": provider}
        uuid.UUID(items[model]["id"])


def test_gateway_auth(platform: Platform, routed: dict[str, Any]) -> None:
    model = routed["models"]["openai_compatible"][0]
    gemini = routed["models"]["gemini"][0]
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    gw = platform.url + "/gateway"
    with httpx.Client(timeout=30) as http:
        missing = http.post(gw + "/chat/completions", json=body)
        wrong = http.post(
            gw + "/chat/completions", json=body, headers={"Authorization": "Bearer hud_nope"}
        )
        ok = http.post(
            gw + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {routed['key']}"},
        )
        goog = http.post(
            f"{gw}/v1beta/models/{gemini}:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": routed["key"]},
        )
        goog_wrong = http.post(
            f"{gw}/v1beta/models/{gemini}:generateContent",
            json={"contents": []},
            headers={"x-goog-api-key": "hud_nope"},
        )
        unknown = http.post(
            gw + "/chat/completions",
            json={**body, "model": "no-such-model"},
            headers={"Authorization": f"Bearer {routed['key']}"},
        )
        mismatch = http.post(
            gw + "/v1/messages",
            json={**body, "max_tokens": 5},
            headers={"Authorization": f"Bearer {routed['key']}"},
        )
    SEEN.extend(r.text for r in (missing, wrong, ok, goog, goog_wrong, unknown, mismatch))
    assert missing.status_code == 401 and "error" in missing.json()
    assert wrong.status_code == 401
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
    assert goog.status_code == 200 and goog.json()["candidates"]
    assert goog_wrong.status_code == 401 and goog_wrong.json()["error"]["status"]
    assert unknown.status_code == 404 and model in unknown.json()["error"]["message"]
    assert mismatch.status_code == 400 and mismatch.json()["type"] == "error"


def test_retries_honour_retry_after_and_keys_are_scrubbed(platform: Platform) -> None:
    secret = f"sk-flaky-{uuid.uuid4().hex}"
    SECRETS.append(secret)
    model = unique("flaky")
    script = [
        Fail(429, "slow down", {"Retry-After": "0"}),
        Fail(503, "busy", {"Retry-After": "0"}),
        Reply(text="third time lucky"),
        Fail(400, f"bad request for key {secret}"),  # a provider echoing the key back
        Fail(401, f"Incorrect API key provided: {secret}"),
    ]
    key = platform.new_key("--name", "flaky")
    with FakeProvider(script) as flaky:
        add_upstream(platform, "openai_compatible", flaky.url + "/v1", model, key=secret)
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        with platform.api(key) as api:
            ok = api.post("/gateway/chat/completions", json=body)
            echoed = api.post("/gateway/chat/completions", json=body)
            refused = api.post("/gateway/chat/completions", json=body)
    SEEN.extend(r.text for r in (ok, echoed, refused))
    assert ok.status_code == 200, ok.text
    assert ok.json()["choices"][0]["message"]["content"] == "third time lucky"
    assert len(flaky.requests) == 5  # 429, 503, 200 for the first call; one each after
    assert echoed.status_code == 400 and secret not in echoed.text and "***" in echoed.text
    assert refused.status_code == 502 and secret not in refused.text
    assert "rejected the gateway's credentials" in refused.text


def test_streamed_replies_pass_through_as_they_arrive(platform: Platform) -> None:
    """The upstream holds its stream open after the first event until the test has read that
    event through the gateway: a buffering proxy would never deliver it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    first_seen = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()

            def chunk(data: str) -> None:
                raw = data.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
                self.wfile.flush()

            base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            delta = {**base, "choices": [{"index": 0, "delta": {"content": "one"}}]}
            chunk(f"data: {json.dumps(delta)}\n\n")
            first_seen.wait(30)
            last = {**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}
            chunk(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        model = unique("slow")
        add_upstream(platform, "openai_compatible", f"http://127.0.0.1:{server.server_port}/v1",
                     model)  # fmt: skip
        key = platform.new_key("--name", "stream")
        trace = uuid.uuid4().hex
        body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]}
        lines: list[str] = []
        with platform.api(key) as api:
            with api.stream(
                "POST", "/gateway/chat/completions", json=body, headers={"Trace-Id": trace}
            ) as reply:
                assert reply.status_code == 200
                assert reply.headers["content-type"].startswith("text/event-stream")
                for line in reply.iter_lines():
                    lines.append(line)
                    if '"one"' in line:
                        first_seen.set()
            usage = _usage_rows(platform, key, trace)
    finally:
        first_seen.set()
        server.shutdown()
        server.server_close()
    lines = [line for line in lines if line]
    assert any('"one"' in line for line in lines) and lines[-1] == "data: [DONE]"
    assert usage == (7, 2)


def _usage_rows(platform: Platform, key: str, trace: str) -> tuple[int, int]:
    """Usage recorded for a Trace-Id with no reported trace: read through the job-less trace
    endpoint after reporting the trace (usage is attributed by id, whenever it arrives)."""
    with platform.api(key) as api:
        assert api.post(f"/v2/trace/{trace}/enter", json={}).status_code == 200
        usage = api.get(f"/v2/trace/{trace}").json()["usage"]
    return usage["input_tokens"], usage["output_tokens"]


def test_rate_limit_and_budget_per_team(platform: Platform) -> None:
    team = unique("limited")
    assert platform.hud("team", "add", team).returncode == 0
    key = platform.new_key("--team", team, "--name", "limited")
    other = platform.new_key("--name", "unlimited")
    model = unique("priced")
    with FakeProvider(handler=lambda _r: Reply(text="ok", usage=(1000, 1000))) as fake:
        add_upstream(platform, "openai_compatible", fake.url + "/v1", model,
                     extra=("--price-in", "1000", "--price-out", "1000"))  # fmt: skip
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        proc = platform.hud("limits", team, "--rpm", "3", "--json")
        assert proc.returncode == 0, proc.stderr
        statuses = _until(platform, key, body, lambda r: r.status_code == 429)
        limited = statuses[-1]
        assert limited.headers.get("retry-after") and "rate limit" in limited.text
        with platform.api(other) as api:  # another team is not limited
            assert api.post("/gateway/chat/completions", json=body).status_code == 200

        proc = platform.hud("limits", team, "--budget", "1", "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["spent_usd"] >= 2.0  # each call cost $2
        statuses = _until(platform, key, body, lambda r: r.status_code == 402)
        assert "budget" in statuses[-1].text
        proc = platform.hud("limits", team, "--json")  # no options: limits removed
        assert json.loads(proc.stdout)["budget_usd"] is None
        assert _until(platform, key, body, lambda r: r.status_code == 200)[-1].status_code == 200


def _until(platform: Platform, key: str, body: dict, done: Any) -> list[httpx.Response]:
    """Call until ``done(reply)`` (limits reach the running server within its 2 s refresh)."""
    replies: list[httpx.Response] = []
    deadline = time.monotonic() + 30
    with platform.api(key) as api:
        while time.monotonic() < deadline:
            reply = api.post("/gateway/chat/completions", json=body)
            replies.append(reply)
            if done(reply):
                return replies
            time.sleep(0.2)
    raise AssertionError([r.status_code for r in replies])


def test_upstream_admin_commands(platform: Platform) -> None:
    secret = f"sk-admin-{uuid.uuid4().hex}"
    SECRETS.append(secret)
    model = unique("admin")
    name = add_upstream(platform, "openai", "http://127.0.0.1:9/v1", f"{model}=gpt-real",
                        key=secret)  # fmt: skip
    listed = platform.hud("upstream", "list", "--json")
    table = platform.hud("upstream", "list")
    SEEN.extend([listed.stdout, listed.stderr, table.stdout, table.stderr])
    mine = next(u for u in json.loads(listed.stdout) if u["name"] == name)
    assert mine["models"] == [f"{model}=gpt-real"] and mine["has_api_key"] is True
    assert name in table.stdout
    again = platform.hud("upstream", "add", name, "--provider", "openai", "--base-url",
                         "http://x/v1", "--model", "m2")  # fmt: skip
    assert again.returncode == 1 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    bad = platform.hud("upstream", "add", unique("bad"), "--provider", "cohere", "--base-url",
                       "http://x", "--model", "m")  # fmt: skip
    assert bad.returncode == 1 and "unknown provider" in bad.stderr
    removed = platform.hud("upstream", "remove", name)
    assert removed.returncode == 0
    gone = platform.hud("upstream", "remove", name)
    assert gone.returncode == 1 and "no upstream named" in gone.stderr
    key = platform.new_key("--name", "admin-check")
    with platform.api(key) as api:
        names = [
            m["model_name"] for m in api.get("/v2/models", params={"limit": 1000}).json()["items"]
        ]
    assert model not in names


def test_upstream_keys_appear_nowhere(platform: Platform) -> None:
    """Runs last in the module: every reply, CLI output, the server log, the database file
    and the stored spans hold no upstream key in clear."""
    assert SECRETS
    haystacks = list(SEEN)
    haystacks.append(platform.log.read_text(errors="replace"))
    db_file = platform.data_dir / "platform.db"
    if platform.kind == "sqlite":
        raw = b"".join(
            p.read_bytes() for p in platform.data_dir.glob("platform.db*") if p.is_file()
        )
        assert raw and db_file.exists()
        haystacks.append(raw.decode("latin-1"))
    key = platform.new_key("--name", "leak-check")
    with platform.api(key) as api:
        haystacks.append(api.get("/v2/models", params={"limit": 1000}).text)
    for secret in SECRETS:
        for text in haystacks:
            assert secret not in text


def test_usage_survives_a_stop_right_after_the_call(fresh_platform: Platform) -> None:
    """Usage rows are written in batches; stopping the server (SIGTERM) writes the last one."""
    platform = fresh_platform
    model = unique("stop")
    with FakeProvider(handler=lambda _r: Reply(text="ok", usage=(5, 4))) as fake:
        add_upstream(platform, "openai_compatible", fake.url + "/v1", model)
        key = platform.new_key("--name", "stop")
        trace = uuid.uuid4().hex
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        with platform.api(key) as api:
            reply = api.post("/gateway/chat/completions", json=body, headers={"Trace-Id": trace})
        assert reply.status_code == 200
        platform.stop()
    platform.start()
    assert _usage_rows(platform, key, trace) == (5, 4)
