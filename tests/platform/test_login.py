"""`hud login` completes an RFC 8628 device flow against a live platform: the approval goes
through the verification page's HTML form over HTTP (no JavaScript), the key lands in
``~/.hud/.env`` with the platform's URLs; denial and the token endpoint's errors."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid

import httpx

from tests.platform.helpers import REPO, Platform, base_env, make_home, requires_extra

pytestmark = requires_extra


def start_login(platform: Platform) -> tuple[subprocess.Popen[str], str, str, object]:
    home = make_home()
    env = {**base_env(home), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hud", "login", "--url", platform.url, "--no-browser"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Code:"):
            break
    text = "".join(lines)
    page = re.search(r"(http://\S+/web/device\?code=\S+)", text)
    code = re.search(r"Code: (\S+)", text)
    assert page and code, (text, proc.stderr.read() if proc.poll() is not None else "")
    return proc, page[1], code[1], home


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_login_approved_through_the_form(platform: Platform) -> None:
    approver = platform.new_key("--name", "approver")
    proc, page_url, code, home = start_login(platform)
    try:
        page = httpx.get(page_url)
        # a plain form POST: approving needs no JavaScript (tests/web drive it with JS off)
        assert page.status_code == 200 and '<form method="post"' in page.text
        assert code in page.text and 'name="api_key"' in page.text
        bad = httpx.post(
            f"{platform.url}/web/device",
            data={"user_code": code, "api_key": "hud_wrong", "action": "approve"},
        )
        assert bad.status_code == 401 and "Invalid API key" in bad.text
        ok = httpx.post(
            f"{platform.url}/web/device",
            data={"user_code": code.lower().replace("-", ""), "api_key": approver,
                  "action": "approve"},
        )  # fmt: skip
        assert ok.status_code == 200 and "Device approved" in ok.text
        rc, out, err = finish(proc)
    finally:
        proc.kill()
    assert rc == 0, (out, err)
    assert "Signed in as admin@localhost" in out
    stored = (home / ".hud" / ".env").read_text()
    values = dict(
        line.split("=", 1) for line in stored.splitlines() if line and not line.startswith("#")
    )
    assert values["HUD_API_URL"] == platform.url
    assert values["HUD_TELEMETRY_URL"] == f"{platform.url}/telemetry"
    assert values["HUD_WEB_URL"] == f"{platform.url}/web"
    key = values["HUD_API_KEY"]
    assert key != approver and key not in out + err
    with platform.api(key) as api, platform.api(approver) as other:
        assert (
            api.get("/v2/auth/me").json()["user_id"] == other.get("/v2/auth/me").json()["user_id"]
        )
    # the code is single-use
    again = httpx.post(f"{platform.url}/web/device", data={"user_code": code, "api_key": approver})
    assert again.status_code in (404, 409)


def test_login_denied_with_bearer_header(platform: Platform) -> None:
    approver = platform.new_key()
    proc, page_url, code, home = start_login(platform)
    try:
        signed = httpx.get(page_url, headers={"Authorization": f"Bearer {approver}"})
        assert "Signed in as admin@localhost" in signed.text
        denied = httpx.post(
            f"{platform.url}/web/device",
            data={"user_code": code, "action": "deny"},
            headers={"Authorization": f"Bearer {approver}"},
        )
        assert denied.status_code == 200 and "denied" in denied.text
        rc, _out, err = finish(proc)
    finally:
        proc.kill()
    assert rc == 1 and "denied" in err and "Traceback" not in err
    assert not (home / ".hud" / ".env").exists()


def test_token_endpoint_errors(platform: Platform) -> None:
    with httpx.Client(base_url=platform.url) as http:
        grant = http.post("/auth/device/code", json={"client_name": "t"}).json()
        assert {"device_code", "user_code", "verification_uri", "expires_in", "interval"} <= set(
            grant
        )
        first = http.post("/auth/device/token", json={"device_code": grant["device_code"]})
        assert first.status_code == 400 and first.json()["error"] == "authorization_pending"
        fast = http.post("/auth/device/token", json={"device_code": grant["device_code"]})
        assert fast.json()["detail"]["error"] == "slow_down"
        unknown = http.post("/auth/device/token", json={"device_code": uuid.uuid4().hex})
        assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
        assert http.post("/auth/device/token", json={}).status_code == 422
        assert http.get("/web/device", params={"code": "ZZZZ-ZZZZ"}).status_code == 404
