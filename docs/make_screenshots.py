"""Screenshots of the web pages for the README (``make screenshots``).

Starts a throwaway `hud platform serve` (SQLite), reports a few demo jobs through its real API
(trace enter/exit and step spans, as `hud eval` does), signs in with Playwright driving the
system Chromium (no browser download) and saves ``docs/images/web-jobs.png``,
``web-job.png``, ``web-trace.png`` and ``web-leaderboard.png`` (a taskset's leaderboard).

Usage: ``.venv/bin/python docs/make_screenshots.py [--out docs/images]``.
"""

from __future__ import annotations

import argparse
import base64
import random
import shutil
import struct
import sys
import tempfile
import uuid
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.platform.helpers import Platform  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# -- a small PNG, drawn by hand (a screen capture stand-in) ----------------------------------
def png(width: int = 480, height: int = 270) -> bytes:
    """A window with a title bar, a sidebar and a few text-like bars."""
    pixels = [[(246, 246, 243)] * width for _ in range(height)]

    def box(x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int]) -> None:
        for y in range(max(0, y0), min(height, y1)):
            row = pixels[y]
            for x in range(max(0, x0), min(width, x1)):
                row[x] = color

    box(0, 0, width, 26, (38, 41, 47))
    for i, color in enumerate(((237, 106, 94), (245, 191, 79), (98, 197, 84))):
        box(12 + i * 18, 9, 22 + i * 18, 19, color)
    box(0, 26, 110, height, (228, 230, 236))
    for i in range(6):
        box(14, 46 + i * 26, 94, 58 + i * 26, (190, 196, 210) if i else (90, 127, 224))
    rng = random.Random(3)
    for i in range(9):
        box(130, 46 + i * 22, 130 + rng.randint(120, 320), 56 + i * 22, (200, 203, 208))
    box(130, 46 + 9 * 22, 250, 66 + 9 * 22, (47, 91, 211))
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# -- demo data through the real reporting API ------------------------------------------------
def _span(trace: str, step: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"step.{step['source']}",
        "trace_id": trace,
        "span_id": uuid.uuid4().hex[:16],
        "start_time": step["started_at"],
        "end_time": step["ended_at"],
        "attributes": {"hud.schema": "hud.step.v1", "hud.task_run_id": trace, "hud.payload": step},
    }


def _text(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


def _agent(content: str, call: tuple[str, str, dict] | None, tokens: tuple[int, int]) -> dict:
    step: dict[str, Any] = {
        "source": "agent", "content": content, "model": "demo-model",
        "finish_reason": "tool_use" if call else "end_turn", "done": call is None,
        "usage": {"prompt_tokens": tokens[0], "completion_tokens": tokens[1]},
        "tool_calls": [{"id": call[0], "name": call[1], "arguments": call[2]}] if call else [],
    }  # fmt: skip
    return step


def _tool(call: tuple[str, str, dict], content: list[dict[str, Any]]) -> dict:
    return {
        "source": "tool",
        "call": {"id": call[0], "name": call[1], "arguments": call[2]},
        "result": {"content": content},
    }


def rich_steps() -> list[dict[str, Any]]:
    prompt = (
        "The signup form accepts emails without a domain. Fix the validator in "
        "app/forms.py so that `a@b` is rejected and `a@b.io` accepted, then submit."
    )
    image = base64.b64encode(png()).decode("ascii")
    diff = (
        "--- a/app/forms.py\n+++ b/app/forms.py\n@@ -12,7 +12,8 @@ def valid_email(text):\n"
        '     if "@" not in text:\n         return False\n-    return True\n'
        '+    local, _, domain = text.partition("@")\n+    return bool(local) and "." in domain\n'
    )
    pytest_call = ("c1", "bash", {"command": "pytest -q tests/test_forms.py"})
    shot_call = ("c2", "computer", {"action": "screenshot"})
    edit_call = ("c3", "edit", {"path": "app/forms.py"})
    final = "Fixed: an address now needs a non-empty local part and a dotted domain."
    failed = "F.\nFAILED tests/test_forms.py::test_rejects_missing_domain\n1 failed, 1 passed"
    grade = {
        "score": 0.8,
        "content": "4 of 5 checks passed: `a@b.io` accepted, `a@b` rejected; `a@localhost` is"
        " still rejected although the spec allows it.",
        "subscores": [
            {"name": "tests pass", "weight": 0.6, "value": 1.0},
            {"name": "spec edge cases", "weight": 0.4, "value": 0.5},
        ],
    }
    setup = {"phase": "setup", "name": "fix_validator", "arguments": {"repo": "signup-app"},
             "result": {"prompt": prompt}}  # fmt: skip
    evaluate = {"phase": "evaluate", "name": "fix_validator", "arguments": {"answer": final},
                "result": grade}  # fmt: skip
    patches = [{"path": "app/forms.py", "status": "modified", "patch": diff}]
    first = _agent("Let me look at the validator and the failing test.", pytest_call, (1840, 96))
    first["reasoning"] = "Look at the validator first, then run the tests."
    steps: list[dict[str, Any]] = [
        {"source": "task", "task_call": setup},
        {"source": "user", "messages": [{"role": "user", "content": _text(prompt)}]},
        first,
        _tool(pytest_call, _text(failed)),
        _agent("I'll check the form in the browser.", shot_call, (2210, 41)),
        _tool(shot_call, [{"type": "image", "data": image, "mimeType": "image/png"}]),
        _agent("The domain part is never checked. Fixing it.", edit_call, (2650, 180)),
        _tool(edit_call, _text("app/forms.py: 1 edit applied")),
        _agent(final, None, (2890, 38)),
        {
            "source": "system",
            "messages": [{"role": "system", "content": _text("[files] 1 changed")}],
            "extra": {"filetracking": {"patches": patches}},
        },
        {"source": "task", "task_call": evaluate},
    ]
    clock = 0.0
    for i, step in enumerate(steps, 1):
        step["step_id"] = i
        step["started_at"] = f"2026-12-02T14:00:{clock:06.3f}Z"
        clock += {"agent": 2.4, "tool": 0.7}.get(step["source"], 0.05)
        step["ended_at"] = f"2026-12-02T14:00:{clock:06.3f}Z"
    return steps


def seed(platform: Platform, key: str) -> tuple[str, str]:
    rng = random.Random(11)
    job_id = ""
    rich = ""
    with platform.api(key) as api:
        for name, tasks, group, running in (
            ("smoke (4 tasks)", 4, 1, False),
            ("signup-bugs (24 tasks) (8 times)", 24, 8, False),
            ("signup-bugs (24 tasks) (8 times)", 24, 8, True),
        ):
            job = uuid.uuid4().hex
            api.post(f"/v2/trace/job/{job}/enter", json={"name": name, "group": group})
            for t in range(tasks):
                skill = rng.random()
                gid = uuid.uuid4().hex
                for _ in range(group):
                    tid = uuid.uuid4().hex
                    body = {"job_id": job, "group_id": gid, "task_slug": f"bug-{t:02d}",
                            "model": "demo-model"}  # fmt: skip
                    api.post(f"/v2/trace/{tid}/enter", json=body)
                    if running and rng.random() < 0.3:
                        continue
                    if rng.random() < 0.03:
                        error = "TimeoutError: the environment did not answer in 600 s"
                        api.post(f"/v2/trace/{tid}/exit", json={"status": "error", "error": error})
                        continue
                    reward = (
                        float(rng.random() < skill) if t % 4 else round(rng.random() * skill, 2)
                    )
                    exit_ = {
                        "status": "completed",
                        "reward": reward,
                        "evaluation_result": {"score": reward},
                    }
                    api.post(f"/v2/trace/{tid}/exit", json=exit_)
                    if not rich and group > 1:
                        rich = tid
                        spans = [_span(tid, s) for s in rich_steps()]
                        api.post(
                            f"/telemetry/trace/{tid}/telemetry-upload", json={"telemetry": spans}
                        )
                        frame = rich_steps()[-1]["task_call"]["result"]
                        done = {"status": "completed", "reward": 0.8, "evaluation_result": frame}
                        api.post(f"/v2/trace/{tid}/exit", json=done)
            if group > 1 and not running:
                job_id = str(uuid.UUID(job))
    return job_id, str(uuid.UUID(rich))


def seed_taskset(platform: Platform, key: str) -> str:
    """A taskset three agents ran twice (two attempts a task each time), for its leaderboard."""
    rng = random.Random(5)
    agents = (("claude-sonnet-4-6", 0.78), ("gpt-5-mini", 0.62), ("demo-model", 0.41))
    with platform.api(key) as api:
        taskset = api.post("/v2/tasksets", json={"name": "signup-bugs"}).json()["id"]
        difficulty = [rng.random() for _ in range(24)]
        for round_, gain in ((1, 0.8), (2, 1.0)):
            for model, skill in agents:
                job = uuid.uuid4().hex
                enter = {"name": f"signup-bugs round {round_} · {model}", "group": 2,
                         "taskset_id": taskset}  # fmt: skip
                api.post(f"/v2/trace/job/{job}/enter", json=enter)
                for t, hard in enumerate(difficulty):
                    for _ in range(2):
                        tid = uuid.uuid4().hex
                        body = {"job_id": job, "task_slug": f"bug-{t:02d}", "model": model}
                        api.post(f"/v2/trace/{tid}/enter", json=body)
                        reward = float(rng.random() < gain * skill * (1.4 - hard))
                        done = {"status": "completed", "reward": reward}
                        api.post(f"/v2/trace/{tid}/exit", json=done)
    return taskset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    ns = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("error: needs playwright (pip install -e '.[dev]')")
    if CHROMIUM is None:
        sys.exit("error: needs chromium (apt-get install chromium)")
    ns.out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="hud-screenshots-"))
    platform = Platform("sqlite", base / "data").start()
    try:
        key = platform.admin_key or platform.new_key()
        job, trace = seed(platform, key)
        taskset = seed_taskset(platform, key)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(platform.url + "/web/signin")
            page.fill("input[name=key]", key)
            page.click("button[type=submit]")
            page.wait_for_url("**/web/jobs")
            shots = (("web-jobs.png", "/web/jobs", 560), ("web-job.png", f"/web/jobs/{job}", 1500),
                     ("web-trace.png", f"/web/trace/{trace}", 2200),
                     ("web-leaderboard.png", f"/web/tasksets/{taskset}", 1160))  # fmt: skip
            for name, path, height in shots:
                page.goto(platform.url + path)
                page.wait_for_load_state("networkidle")
                full = page.evaluate("document.documentElement.scrollHeight")
                clip = {"x": 0, "y": 0, "width": 1280, "height": min(height, full)}
                page.screenshot(path=str(ns.out / name), clip=clip, full_page=True)
                print(f"wrote {ns.out / name}")
            browser.close()
    finally:
        platform.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
