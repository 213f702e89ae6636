"""The platform's REST surface on SQLite and PostgreSQL: auth and team isolation, keys never in
clear, §0.4 errors, both id forms (§0.5), span upserts in any order, projects, admin commands."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.platform.helpers import Platform, page, requires_extra

pytestmark = requires_extra


def span(trace: uuid.UUID, span_id: str, content: str, start: str) -> dict:
    return {
        "name": "step.agent",
        "trace_id": trace.hex,
        "span_id": span_id,
        "start_time": start,
        "end_time": start,
        "status_code": "OK",
        "attributes": {
            "hud.schema": "hud.step.v1",
            "hud.task_run_id": trace.hex,
            "hud.payload": {"step_id": 1, "source": "agent", "content": content, "tool_calls": []},
        },
        "events": [],
    }


def test_auth_required_revoked_and_team_isolation(platform: Platform) -> None:
    with platform.api(None) as anon:
        trace = uuid.uuid4().hex
        paths = [("GET", "/v2/auth/me"), ("GET", "/v2/jobs"),
                 ("POST", f"/v2/trace/{trace}/enter"),
                 ("POST", f"/telemetry/trace/{trace}/telemetry-upload")]  # fmt: skip
        for method, path in paths:
            reply = anon.request(method, path, json={})
            assert reply.status_code == 401, (path, reply.text)
            assert "detail" in reply.json() and reply.headers["www-authenticate"] == "Bearer"
        # the report routes take POST only, whichever layer answers
        assert anon.get(f"/v2/trace/{trace}/exit").status_code == 405
        assert anon.put(f"/telemetry/trace/{trace}/telemetry-upload").status_code == 405
        assert anon.post("/telemetry/sdk-events/cli", json={"events": []}).status_code == 204
        assert anon.get("/v2/auth/me", headers={"Authorization": "Bearer nope"}).status_code == 401

    key = platform.new_key("--name", "to-revoke")
    with platform.api(key) as api:
        me = api.get("/v2/auth/me").json()
        assert uuid.UUID(me["user_id"]) and uuid.UUID(me["team_id"])
        assert api.get("/v2/auth/me").json() == me  # stable per key
        job = uuid.uuid4()
        assert api.post(f"/v2/trace/job/{job.hex}/enter", json={"name": "mine"}).is_success
    listed = platform.hud("key", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entry = next(k for k in json.loads(listed.stdout) if k["name"] == "to-revoke")
    assert key not in listed.stdout and key.startswith(entry["prefix"])
    revoked = platform.hud("key", "revoke", entry["id"])
    assert revoked.returncode == 0, revoked.stderr
    with platform.api(key) as api:
        # verified keys are trusted for up to a second (AUTH_CACHE_SECONDS) without a lookup
        deadline = time.monotonic() + 10
        while (reply := api.get("/v2/auth/me")).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert reply.status_code == 401 and "revoked" in reply.json()["detail"]

    team = f"other-{uuid.uuid4().hex[:6]}"
    assert platform.hud("team", "add", team).returncode == 0
    other = platform.new_key("--team", team)
    mine = platform.new_key()
    with platform.api(mine) as api:
        job, trace = uuid.uuid4(), uuid.uuid4()
        api.post(f"/v2/trace/job/{job.hex}/enter", json={"name": "private"})
        api.post(f"/v2/trace/{trace.hex}/enter", json={"job_id": job.hex})
    with platform.api(other) as api:
        assert api.get("/v2/auth/me").json()["team_id"] != me["team_id"]
        assert api.get(f"/v2/jobs/{job}/traces").status_code == 404
        assert api.get(f"/v2/jobs/{job}").status_code == 404
        assert api.get(f"/v2/trace/{trace}").status_code == 404
        assert api.get(f"/v2/trace/{trace}/events").status_code == 404
        assert str(job) not in json.dumps(page(api, "/v2/jobs"))
        # writing into another team's objects is refused the same way
        assert api.post(f"/v2/trace/{trace.hex}/exit", json={"status": "error"}).status_code == 404
        assert api.post(f"/v2/trace/job/{job.hex}/enter", json={}).status_code == 404
        assert api.post("/v2/rollouts/cancel_job", json={"job_id": str(job)}).status_code == 404
        assert api.post("/v2/rollouts/cancel", json={"trace_id": str(trace)}).json() == {
            "status": "not_found"
        }
    with platform.api(mine) as api:
        assert api.get(f"/v2/trace/{trace}").json()["status"] == "running"


def test_no_key_in_clear_in_database_or_logs(
    platform: Platform, postgres_data: Path | None
) -> None:
    key = platform.new_key("--name", "secret-check")
    with platform.api(key) as api:
        assert api.get("/v2/auth/me").is_success
        api.get("/v2/jobs", headers={"Authorization": f"Bearer {key}x"})  # a failed attempt too
    needles = [key.encode(), key[4:].encode()]
    roots = [platform.data_dir] if platform.kind == "sqlite" else [postgres_data]
    files = [p for root in roots if root for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert not any(n in data for n in needles), f"key in clear in {path}"
    log = platform.log.read_bytes()
    assert not any(n in log for n in needles), "key in the platform log"
    if platform.admin_key:  # printed once, at first start, and never again
        assert log.count(platform.admin_key.encode()) == 1


@pytest.fixture
def postgres_data(platform: Platform, request: pytest.FixtureRequest) -> Path | None:
    if platform.kind != "postgresql":
        return None
    cluster = request.getfixturevalue("postgres")
    import subprocess

    # flush everything to the data files before grepping them
    subprocess.run(
        [*cluster.run_as, str(cluster.bindir / "psql"), "-h", "127.0.0.1", "-p", str(cluster.port),
         "-U", "postgres", "-c", "CHECKPOINT"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cluster.data


def test_errors_are_detail_bodies_and_bad_bodies_422(platform: Platform) -> None:
    key = platform.new_key()
    trace = uuid.uuid4().hex
    with platform.api(key) as api:
        cases = [
            (f"/v2/trace/{trace}/exit", {"status": "weird"}, "status"),
            (f"/v2/trace/{trace}/exit", {"status": "completed", "reward": "x"}, "reward"),
            (f"/v2/trace/{trace}/exit", {}, "status"),
            (f"/v2/trace/{trace}/enter", {"job_id": 5}, "job_id"),
            (f"/v2/trace/job/{trace}/enter", {"group": "many"}, "group"),
            (f"/telemetry/trace/{trace}/telemetry-upload", {"telemetry": "no"}, "telemetry"),
            (f"/telemetry/trace/{trace}/telemetry-upload", {"telemetry": [{"x": 1}]}, "span_id"),
            ("/v2/rollouts/cancel_job", {}, "job_id"),
            ("/v2/projects", {"name": ""}, "name"),
        ]
        for path, body, field in cases:
            reply = api.post(path, json=body)
            assert reply.status_code == 422, (path, body, reply.status_code, reply.text)
            detail = reply.json()["detail"]
            assert isinstance(detail, str) and field in detail, (path, detail)
        for raw in (b"{not json", b"[]", b"null", b"\xff\xfe"):
            reply = api.post(
                f"/v2/trace/{trace}/exit", content=raw, headers={"content-type": "application/json"}
            )
            assert reply.status_code == 422, (raw, reply.text)
        assert api.get("/v2/jobs", params={"limit": 0}).status_code == 422
        assert api.get("/v2/jobs", params={"limit": "x"}).status_code == 422
        reply = api.get("/v2/nowhere")
        assert reply.status_code == 404 and "detail" in reply.json()
        assert api.get(f"/v2/jobs/{uuid.uuid4()}/traces").json()["detail"].startswith("Job")
        assert api.get("/v2/projects/not-a-uuid").status_code == 404
        reply = api.post("/gateway/v1/nowhere", json={})
        assert reply.status_code == 404 and "gateway" in reply.json()["detail"]
        big = b'{"telemetry": [' + b" " * (40 * 1024 * 1024) + b"]}"
        reply = api.post(f"/telemetry/trace/{trace}/telemetry-upload", content=big,
                         headers={"content-type": "application/json"})  # fmt: skip
        assert reply.status_code == 413
        assert api.get("/v2/auth/me").is_success  # still serving


def test_both_id_forms_and_span_upserts(platform: Platform) -> None:
    key = platform.new_key()
    job, trace = uuid.uuid4(), uuid.uuid4()
    with platform.api(key) as api:
        # spans before the trace was entered, then an update of the same span
        up = f"/telemetry/trace/{trace.hex}/telemetry-upload"
        early = span(trace, "a" * 16, "first draft", "2026-01-01T00:00:01Z")
        assert api.post(up, json={"telemetry": [early]}).json() == {"accepted": 1}
        assert api.post(
            f"/v2/trace/job/{job.hex}/enter", json={"name": "ids", "group": 2}
        ).is_success
        body = {"job_id": job.hex, "group_id": "g" * 32, "task_slug": "s", "model": "m"}
        assert api.post(f"/v2/trace/{trace}/enter", json=body).is_success  # dashed form
        assert api.get(f"/v2/trace/{trace.hex}").json()["status"] == "running"
        exit_body = {"status": "completed", "reward": 0.5, "evaluation_result": {"score": 0.5},
                     "stop_reason": "done", "metadata": {"k": 1}}  # fmt: skip
        assert api.post(f"/v2/trace/{trace.hex}/exit", json=exit_body).is_success
        late = [span(trace, "a" * 16, "final", "2026-01-01T00:00:01Z"),
                span(trace, "b" * 16, "second", "2026-01-01T00:00:02Z")]  # fmt: skip
        assert api.post(
            f"/telemetry/trace/{trace}/telemetry-upload", json={"telemetry": late}
        ).is_success
        spans = page(api, f"/v2/trace/{trace}/spans")
        assert [s["attributes"]["hud.payload"]["content"] for s in spans] == ["final", "second"]
        got = api.get(f"/v2/trace/{trace}").json()
        assert got["span_count"] == 2
        assert (got["status"], got["reward"], got["stop_reason"]) == ("completed", 0.5, "done")
        assert got["job_id"] == str(job) and got["metadata"] == {"k": 1}
        events = api.get(f"/v2/trace/{trace.hex}/events").json()["events"]
        assert [e["kind"] for e in events] == ["agent_message", "agent_message"]
        assert events[0]["text"] == "final"
        assert page(api, f"/v2/jobs/{job.hex}/traces") == page(api, f"/v2/jobs/{job}/traces")
        job_row = api.get(f"/v2/jobs/{job.hex}").json()
        assert (job_row["id"], job_row["group"], job_row["status"]) == (str(job), 2, "completed")


def test_paging_and_projects(platform: Platform) -> None:
    team = f"paging-{uuid.uuid4().hex[:6]}"
    assert platform.hud("team", "add", team).returncode == 0
    key = platform.new_key("--team", team)
    with platform.api(key) as api:
        job = uuid.uuid4()
        for _ in range(5):
            api.post(f"/v2/trace/{uuid.uuid4().hex}/enter", json={"job_id": job.hex})
        seen: list[str] = []
        while True:
            body = api.get(
                f"/v2/jobs/{job}/traces", params={"limit": 2, "offset": len(seen)}
            ).json()
            assert body["total"] == 5
            seen += [t["id"] for t in body["items"]]
            if len(seen) >= body["total"]:
                break
        assert len(set(seen)) == 5
        projects = api.get("/v2/projects", params={"limit": 1}).json()
        assert projects["total"] == 1 and projects["items"][0]["is_default"] is True
        made = api.post("/v2/projects", json={"name": "My Project_1", "description": "d"})
        assert made.status_code == 200, made.text
        assert made.json()["name"] == "my-project-1"
        assert api.post("/v2/projects", json={"name": "my project 1"}).status_code == 409
        found = page(api, "/v2/projects", search="my-project-1")
        assert [p["id"] for p in found] == [made.json()["id"]]
        assert api.get(f"/v2/projects/{made.json()['id']}").json()["name"] == "my-project-1"


def test_admin_commands(platform: Platform) -> None:
    env = platform.hud("env")
    assert env.returncode == 0, env.stderr
    lines = dict(line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines())
    assert lines == platform.client_env()
    made = platform.hud("key", "create", "--name", "plain")
    assert made.returncode == 0
    key = made.stdout.strip().splitlines()[-1]
    with platform.api(key) as api:
        assert api.get("/v2/auth/me").is_success
    email = f"u{uuid.uuid4().hex[:6]}@example.com"
    assert platform.hud("user", "add", email).returncode == 0
    user_key = platform.new_key("--user", email)
    with platform.api(user_key) as api, platform.api(key) as admin:
        assert (
            api.get("/v2/auth/me").json()["user_id"] != admin.get("/v2/auth/me").json()["user_id"]
        )
    dup = platform.hud("user", "add", email)
    assert dup.returncode == 1 and "already exists" in dup.stderr and "Traceback" not in dup.stderr
    missing = platform.hud("key", "create", "--team", "no-such-team")
    assert missing.returncode == 1 and "no-such-team" in missing.stderr


def test_batched_reports(platform: Platform) -> None:
    """Our reporter's batch form: one result per item, in order; a bad item or another team's
    id fails alone."""
    key = platform.new_key()
    team = f"batch-{uuid.uuid4().hex[:6]}"
    assert platform.hud("team", "add", team).returncode == 0
    other = platform.new_key("--team", team)
    theirs = uuid.uuid4()
    with platform.api(other) as api:
        assert api.post(f"/v2/trace/{theirs.hex}/enter", json={}).is_success
    job, trace = uuid.uuid4(), uuid.uuid4()
    early = span(trace, "c" * 16, "hi", "2026-01-01T00:00:00Z")
    items = [
        {"kind": "spans", "id": trace.hex, "body": [early]},
        {"kind": "job", "id": job.hex, "body": {"name": "batched", "group": 1}},
        {"kind": "enter", "id": trace.hex, "body": {"job_id": job.hex, "task_slug": "s"}},
        {"kind": "exit", "id": trace.hex, "body": {"status": "nope"}},
        {"kind": "exit", "id": theirs.hex, "body": {"status": "completed", "reward": 1}},
        {"kind": "exit", "id": trace.hex, "body": {"status": "completed", "reward": 0.25}},
    ]  # fmt: skip
    with platform.api(key) as api:
        reply = api.post("/v2/reports", json={"items": items})
        assert reply.status_code == 200, reply.text
        assert [r["status"] for r in reply.json()["results"]] == [200, 200, 200, 422, 404, 200]
        got = api.get(f"/v2/trace/{trace}").json()
        assert (got["status"], got["reward"], got["span_count"]) == ("completed", 0.25, 1)
        assert api.get(f"/v2/jobs/{job}").json()["name"] == "batched"
        bad = api.post("/v2/reports", json={"items": [{"kind": "weird", "id": "x"}]})
        assert bad.status_code == 422 and "kind" in bad.json()["detail"]
    with platform.api(other) as api:
        assert api.get(f"/v2/trace/{theirs}").json()["status"] == "running"


def test_enter_and_exit_in_one_batch_act_as_one_after_the_other(platform: Platform) -> None:
    """A trace entered and exited in one batch (a short rollout within one flush) is written
    as one row: a new trace ends with both reports' fields; a cancelled one stays cancelled
    (its reward kept, its start time its own); another team's trace refuses both; a later exit
    in the same batch still wins."""
    key = platform.new_key()
    team = f"merge-{uuid.uuid4().hex[:6]}"
    assert platform.hud("team", "add", team).returncode == 0
    other = platform.new_key("--team", team)
    job, new, cancelled, theirs = (uuid.uuid4() for _ in range(4))
    with platform.api(other) as api:
        assert api.post(f"/v2/trace/{theirs.hex}/enter", json={}).is_success
    with platform.api(key) as api:
        assert api.post(f"/v2/trace/{cancelled.hex}/enter", json={"task_slug": "c"}).is_success
        started = api.get(f"/v2/trace/{cancelled}").json()["start_time"]
        reply = api.post("/v2/rollouts/cancel", json={"trace_id": str(cancelled)})
        assert reply.status_code == 200, reply.text
        assert api.get(f"/v2/trace/{cancelled}").json()["status"] == "cancelled"

    def both(trace: uuid.UUID, reward: float, **enter: Any) -> list[dict[str, Any]]:
        return [
            {"kind": "enter", "id": trace.hex, "body": {"job_id": job.hex, **enter}},
            {"kind": "exit", "id": trace.hex,
             "body": {"status": "completed", "reward": reward, "evaluation_result": {"r": reward},
                      "stop_reason": "done"}},
        ]  # fmt: skip

    items = [
        *both(new, 0.5, task_slug="n", model="m", group_id="g"),
        {"kind": "exit", "id": new.hex, "body": {"status": "error", "error": "later"}},
        *both(cancelled, 1.0),
        *both(theirs, 1.0),
    ]
    with platform.api(key) as api:
        reply = api.post("/v2/reports", json={"items": items})
        assert reply.status_code == 200, reply.text
        assert [r["status"] for r in reply.json()["results"]] == [200, 200, 200, 200, 200, 404, 404]
        got = api.get(f"/v2/trace/{new}").json()
        assert (got["status"], got["reward"], got["error"], got["stop_reason"]) == (
            "error",
            0.5,
            "later",
            "done",
        )
        assert (got["task_slug"], got["model"], got["group_id"]) == ("n", "m", "g")
        assert got["job_id"] == str(job) and got["evaluation_result"] == {"r": 0.5}
        assert got["start_time"] and got["end_time"]
        got = api.get(f"/v2/trace/{cancelled}").json()
        assert (got["status"], got["reward"], got["task_slug"]) == ("cancelled", 1.0, "c")
        assert got["start_time"] == started and got["end_time"]
        assert api.get(f"/v2/jobs/{job}").json()["trace_count"] == 2
    with platform.api(other) as api:
        got = api.get(f"/v2/trace/{theirs}").json()
        assert (got["status"], got["reward"]) == ("running", None)


def test_report_json_keeps_big_integers_and_nan_becomes_null(platform: Platform) -> None:
    """JSON columns are written by a faster encoder than the standard one: integers past 64
    bits still come back exact (in an exit's result and metadata, and in a span), and NaN,
    which JSON lacks, is stored as null."""
    key = platform.new_key()
    trace = uuid.uuid4()
    big = 2**70 + 1
    spanned = span(trace, "d" * 16, "hi", "2026-01-01T00:00:00Z")
    spanned["attributes"]["count"] = big
    result = f'"evaluation_result": {{"n": {big}, "x": NaN}}, "metadata": {{"n": {big}}}'
    body = f'{{"status": "completed", "reward": 1, {result}}}'
    with platform.api(key) as api:
        assert api.post(f"/v2/trace/{trace.hex}/enter", json={}).is_success
        reply = api.post(
            f"/v2/trace/{trace.hex}/exit",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert reply.status_code == 200, reply.text
        upload = api.post(
            f"/telemetry/trace/{trace.hex}/telemetry-upload", json={"telemetry": [spanned]}
        )
        assert upload.status_code == 200, upload.text
        got = api.get(f"/v2/trace/{trace}").json()
        assert got["evaluation_result"] == {"n": big, "x": None}
        assert got["metadata"] == {"n": big}
        spans = api.get(f"/v2/trace/{trace}/spans").json()["items"]
    assert [s["attributes"]["count"] for s in spans] == [big], spans


def test_concurrent_reports_commit_together_but_stay_apart(platform: Platform) -> None:
    """Reports arriving at once share transactions on the server (group commit), yet each is
    answered on its own: two teams' reports interleaved, another team's trace refused alone, a
    report the database rejects (a NUL in text, refused by PostgreSQL) failing alone."""
    import asyncio

    import httpx

    mine, team = platform.new_key(), f"group-{uuid.uuid4().hex[:6]}"
    assert platform.hud("team", "add", team).returncode == 0
    theirs = platform.new_key("--team", team)
    job = uuid.uuid4()
    traces = {key: [uuid.uuid4() for _ in range(12)] for key in (mine, theirs)}

    async def run() -> list[tuple[str, int]]:
        async with httpx.AsyncClient(base_url=platform.url, timeout=60) as http:

            async def post(key: str, path: str, body: dict) -> tuple[str, int]:
                headers = {"Authorization": f"Bearer {key}"}
                return path, (await http.post(path, json=body, headers=headers)).status_code

            async def report(key: str, trace: uuid.UUID) -> list[tuple[str, int]]:
                enter = {"job_id": job.hex} if key == mine else {}
                upload = {"telemetry": [span(trace, "d" * 16, "x", "2026-01-01T00:00:00Z")]}
                done = {"status": "completed", "reward": 1.0}
                return await asyncio.gather(
                    post(key, f"/v2/trace/{trace.hex}/enter", enter),
                    post(key, f"/telemetry/trace/{trace}/telemetry-upload", upload),
                    post(key, f"/v2/trace/{trace.hex}/exit", done),
                )

            await post(mine, f"/v2/trace/job/{job.hex}/enter", {"name": "group"})
            await asyncio.gather(*(report(k, t) for k, ts in traces.items() for t in ts))
            stolen = traces[mine][0]
            return await asyncio.gather(
                *(report(theirs, uuid.uuid4()) for _ in range(4)),
                post(theirs, f"/v2/trace/{stolen.hex}/exit", {"status": "error"}),
                post(theirs, f"/telemetry/trace/{stolen.hex}/telemetry-upload",
                     {"telemetry": [span(stolen, "e" * 16, "no", "2026-01-01T00:00:00Z")]}),
                post(mine, f"/v2/trace/{uuid.uuid4().hex}/exit",
                     {"status": "error", "error": "nul \u0000 inside"}),
            )  # fmt: skip

    *fine, stolen_exit, stolen_upload, poison = asyncio.run(run())
    assert all(code == 200 for group in fine for _, code in group), fine
    assert (stolen_exit[1], stolen_upload[1]) == (404, 404)
    assert poison[1] in (200, 422)  # SQLite stores the NUL; PostgreSQL refuses text with one
    for key, ids in traces.items():
        with platform.api(key) as api:
            for trace in ids:
                got = api.get(f"/v2/trace/{trace}").json()
                assert (got["status"], got["reward"], got["span_count"]) == ("completed", 1.0, 1)
    with platform.api(mine) as api:
        assert api.get(f"/v2/jobs/{job}").json()["trace_count"] == len(traces[mine])
        assert page(api, f"/v2/trace/{traces[mine][0]}/spans")[0]["span_id"] == "d" * 16


def test_reporter_makes_lazy_spans_once(platform: Platform) -> None:
    """Our reporter takes a span as a function (made in its thread, off the eval's loop): the
    span arrives as made; one whose function fails is dropped alone."""
    from hud.platform.client.reporter import Reporter

    key = platform.new_key()
    trace = uuid.uuid4()
    made: list[int] = []

    def lazy() -> dict:
        made.append(1)
        return span(trace, "f" * 16, "lazy", "2026-01-01T00:00:00Z")

    def broken() -> dict:
        raise ValueError("no span")

    reporter = Reporter(platform.url, f"{platform.url}/telemetry", key)
    reporter.trace_enter(trace.hex, task_slug="lazy")
    reporter.span(trace.hex, lazy)
    reporter.span(trace.hex, broken)
    reporter.trace_exit(trace.hex, status="completed", reward=1.0)
    stats = reporter.close(30)
    assert (stats.sent, stats.dropped, len(made)) == (3, 1, 1), stats
    with platform.api(key) as api:
        spans = page(api, f"/v2/trace/{trace}/spans")
        assert [s["attributes"]["hud.payload"]["content"] for s in spans] == ["lazy"]
        assert api.get(f"/v2/trace/{trace}").json()["status"] == "completed"


def test_reporter_ids_as_hex(platform: Platform) -> None:
    """Our reporter sends a trace id given in any UUID form as 32 lowercase hex digits (the
    form already in use is kept as is): the platform files all of them under one trace."""
    from hud.platform.client.reporter import Reporter

    key = platform.new_key()
    trace = uuid.uuid4()
    reporter = Reporter(platform.url, f"{platform.url}/telemetry", key)
    reporter.trace_enter(str(trace).upper(), task_slug="ids")
    reporter.span(str(trace), span(trace, "e" * 16, "dashed", "2026-01-01T00:00:00Z"))
    reporter.trace_exit(trace.hex, status="completed", reward=1.0)
    stats = reporter.close(30)
    assert (stats.sent, stats.dropped, stats.pending) == (3, 0, 0), stats
    with platform.api(key) as api:
        assert [s["span_id"] for s in page(api, f"/v2/trace/{trace.hex}/spans")] == ["e" * 16]
        assert api.get(f"/v2/trace/{trace.hex}").json()["status"] == "completed"
