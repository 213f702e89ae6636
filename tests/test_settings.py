"""Settings precedence, the .env format, and `hud set` (run as a real subprocess)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hud import settings as hs

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-test-do-not-print-0123456789"


def run_hud(*args: str, home: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HUD_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "AWS_"))
    }
    base.update(
        HOME=str(home),
        PYTHONPATH=str(REPO),
        HUD_CLI_ANALYTICS_ENABLED="0",
        NO_COLOR="1",
        COLUMNS="200",
    )
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "hud", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME and working directory; settings caches dropped before and after."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for key in ("A", "B", "C", "D", "HUD_API_KEY", "HUD_CLIENT_TIMEOUT", "HUD_TELEMETRY_ENABLED"):
        monkeypatch.delenv(key, raising=False)
    hs.reload()
    yield home
    hs.reload()


# -- hud set ---------------------------------------------------------------------------
def test_set_writes_user_env_and_get_setting_reads_it(home: Path) -> None:
    proc = run_hud("set", "B=x y", "A=1", f"HUD_API_KEY={SECRET}", home=home, cwd=Path.cwd())
    assert proc.returncode == 0, proc.stderr
    path = home / ".hud" / ".env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#")
    assert [ln.split("=")[0] for ln in lines if not ln.startswith("#")] == [
        "A",
        "B",
        "HUD_API_KEY",
    ]
    assert "A, B, HUD_API_KEY" in proc.stdout and str(path) in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr
    assert "x y" not in proc.stdout

    hs.reload()
    assert hs.get_setting("A") == "1"
    assert hs.get_setting("B") == "x y"
    assert hs.settings().api_key == SECRET


def test_set_merges_with_existing_keys(home: Path) -> None:
    assert run_hud("set", "A=1", "B=2", home=home, cwd=Path.cwd()).returncode == 0
    assert run_hud("set", "B=3", "C=it's #4", home=home, cwd=Path.cwd()).returncode == 0
    values = hs.read_dotenv(home / ".hud" / ".env")
    assert values == {"A": "1", "B": "3", "C": "it's #4"}


@pytest.mark.parametrize(
    ("arg", "shown"),
    [("foo", "'foo'"), ("1A=x", "'1A=…'"), ("=x", "'=…'"), (SECRET, "'sk-…'")],
)
def test_set_malformed_pair_is_one_line_exit_1(home: Path, arg: str, shown: str) -> None:
    proc = run_hud("set", "GOOD=1", arg, home=home, cwd=Path.cwd())
    assert proc.returncode == 1
    error_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert error_lines == [f"Error: malformed {shown}: expected KEY=VALUE"]
    assert "Traceback" not in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert not (home / ".hud" / ".env").exists()  # nothing written when any pair is bad


def test_set_warns_when_environment_overrides(home: Path) -> None:
    proc = run_hud("set", f"HUD_API_KEY={SECRET}", home=home, cwd=Path.cwd(), HUD_API_KEY="x")
    assert proc.returncode == 0
    assert "HUD_API_KEY is also set in the environment" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


# -- precedence ------------------------------------------------------------------------
def test_precedence_kwargs_env_local_user(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hs.write_user_settings({"A": "user", "B": "user", "C": "user", "D": "user"})
    Path(".env").write_text("B=local\nC=local\nD=local\n")
    monkeypatch.setenv("C", "env")
    monkeypatch.setenv("D", "env")
    hs.reload()
    assert [hs.get_setting(k) for k in "ABCD"] == ["user", "local", "env", "env"]
    assert hs.Settings(D="kw").get("D") == "kw"
    assert hs.Settings(api_key="kw").api_key == "kw"
    assert hs.get_setting("MISSING") is None
    assert hs.get_setting("MISSING", "dflt") == "dflt"
    assert hs.settings().source("B") == str(Path.cwd() / ".env")


def test_empty_env_value_hides_saved_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hs.write_user_settings({"HUD_API_KEY": "saved"})
    assert hs.settings().api_key == "saved"
    monkeypatch.setenv("HUD_API_KEY", "")
    assert hs.get_setting("HUD_API_KEY") == ""
    assert hs.settings().api_key is None


def test_typed_properties_and_defaults(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = hs.settings()
    assert s.api_url == "https://api.hud.ai"
    assert s.client_timeout == 600.0
    assert s.file_tracking_enabled is True
    assert s.telemetry_local_dir is None
    monkeypatch.setenv("HUD_CLIENT_TIMEOUT", "5")
    monkeypatch.setenv("HUD_TELEMETRY_ENABLED", "off")
    monkeypatch.setenv("HUD_TELEMETRY_LOCAL_DIR", "~/traces")
    monkeypatch.setenv("HUD_API_URL", "http://localhost:9/")
    assert s.client_timeout == 5.0
    assert s.telemetry_enabled is False
    assert s.telemetry_local_dir == home / "traces"
    assert s.api_url == "http://localhost:9"
    monkeypatch.setenv("HUD_TELEMETRY_ENABLED", "maybe")
    with pytest.raises(ValueError, match="HUD_TELEMETRY_ENABLED"):
        _ = s.telemetry_enabled


def test_write_user_settings_rejects_bad_key(home: Path) -> None:
    with pytest.raises(ValueError, match="invalid setting name"):
        hs.write_user_settings({"A B": "1"})


# -- .env format -----------------------------------------------------------------------
def test_parse_dotenv() -> None:
    text = (
        "# comment\n"
        "export A=1\n"
        "B = two words  # trailing comment\n"
        "C='single # not a comment'\n"
        'D="line\\nnext \\"q\\""\n'
        "E='multi\n"
        "line'\n"
        "F=\n"
        "not an assignment\n"
        "G=a#b\n"
        "A=again\n"
    )
    assert hs.parse_dotenv(text) == {
        "A": "again",
        "B": "two words",
        "C": "single # not a comment",
        "D": 'line\nnext "q"',
        "E": "multi\nline",
        "F": "",
        "G": "a#b",
    }


def test_parse_dotenv_follows_python_dotenv() -> None:
    """The same values python-dotenv (what most tools read .env with) gives: every escape a
    double-quoted value may hold, and a line with junk after its closing quote is skipped."""
    text = 'H="x\\fy\\tz"\nJ="a" junk\nK=ok\nL="unterminated\n'
    assert hs.parse_dotenv(text) == {"H": "x\fy\tz", "K": "ok"}


@pytest.mark.parametrize(
    "value", ["plain", "", "x y", "it's", 'q"q', "a\\b", "trail\\", "#x", "l1\nl2", " pad "]
)
def test_format_round_trip(value: str) -> None:
    assert hs.parse_dotenv(f"K={hs.format_dotenv_value(value)}\n") == {"K": value}
