"""Live platforms for the tests: `hud platform serve` children on loopback, on SQLite or on a
throwaway PostgreSQL cluster the tests start from the distribution's binaries."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PEER_HUD = REPO / ".peer" / "hud" / "bin" / "hud"
HAVE_PEER = PEER_HUD.exists()
requires_peer = [
    pytest.mark.peer,
    pytest.mark.skipif(
        not HAVE_PEER, reason=f"official hud not installed at {PEER_HUD} (make peer)"
    ),
]
PLAIN = REPO / "tests" / "envs" / "plain"
READY_TIMEOUT = 60.0

try:  # the server extra
    import alembic  # noqa: F401
    import fastapi  # noqa: F401
    import sqlalchemy  # noqa: F401

    HAVE_EXTRA = True
except ImportError:
    HAVE_EXTRA = False
requires_extra = pytest.mark.skipif(
    not HAVE_EXTRA, reason="the platform extra is not installed (pip install -e '.[platform]')"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HUD_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env.update(
        HOME=str(home),
        NO_COLOR="1",
        TERM="dumb",
        COLUMNS="200",
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
    )
    return env


def make_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="hud-platform-home-"))
    cache = home / ".hud" / ".cache"
    cache.mkdir(parents=True)
    # The official CLI's upgrade check is answered from this cache (it never calls PyPI).
    (cache / "version_check.json").write_text(
        json.dumps({"latest": "0.6.21", "checked_at": time.time() + 365 * 86400})
    )
    return home


# -- PostgreSQL ------------------------------------------------------------------------
class Postgres:
    """A throwaway cluster: ``initdb`` + ``pg_ctl`` in a temp dir (run as ``postgres`` when the
    tests run as root, since the server refuses root)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        path = shutil.which("initdb")
        if not found and not path:
            pytest.skip("PostgreSQL server binaries not found (Debian package `postgresql`)")
        self.bindir = Path(found[-1] if found else path).parent
        self.base = Path(tempfile.mkdtemp(prefix="hud-pg-"))
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no `postgres` user to run PostgreSQL")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.data = self.base / "data"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "log"), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip
        self._count = 0

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run(
            [*self.run_as, str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.base,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed: {proc.stdout}\n{proc.stderr}")

    def create_database(self, prefix: str = "hud") -> str:
        self._count += 1
        name = f"{prefix}_{os.getpid()}_{self._count}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except Exception:
            pass
        shutil.rmtree(self.base, ignore_errors=True)


# -- the platform ----------------------------------------------------------------------
class Platform:
    """A `hud platform serve` child; restartable on the same port and data dir."""

    def __init__(
        self, kind: str, data_dir: Path, db: str | None = None, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.kind = kind
        self.extra_args = list(extra_args)
        self.data_dir = data_dir
        self.db = db
        self.port = free_port()
        self.home = make_home()
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin_key: str | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Platform:
        argv = [sys.executable, "-m", "hud", "platform", "serve", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--login-interval", "1"]  # fmt: skip
        if self.db:
            argv += ["--db", self.db]
        argv += self.extra_args
        env = base_env(self.home)
        env["PYTHONPATH"] = str(REPO)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:].decode("utf-8", "replace")
            if "export HUD_WEB_URL=" in text:
                lines = text.splitlines()
                for i, line in enumerate(lines):
                    if line.startswith("Admin API key"):
                        self.admin_key = lines[i + 1].strip()
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"platform exited {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"platform not ready:\n{self.log.read_text()}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client_env(self, key: str | None = None) -> dict[str, str]:
        base = self.url
        env = {
            "HUD_API_URL": base,
            "HUD_TELEMETRY_URL": f"{base}/telemetry",
            "HUD_GATEWAY_URL": f"{base}/gateway",
            "HUD_RUNTIME_URL": base,
            "HUD_WEB_URL": f"{base}/web",
        }
        if key:
            env["HUD_API_KEY"] = key
        return env

    def hud(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Our CLI's admin commands on this platform's data dir."""
        env = base_env(self.home)
        env["PYTHONPATH"] = str(REPO)
        return subprocess.run(
            [sys.executable, "-m", "hud", "platform", *args, "--data-dir", str(self.data_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def new_key(self, *args: str) -> str:
        proc = self.hud("key", "create", "--json", *args)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])["key"]

    def api(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def run_cli(
    argv: list[str],
    env: dict[str, str],
    *,
    cwd: Path,
    timeout: float = 120,
    ours: bool = False,
) -> subprocess.CompletedProcess[str]:
    if ours:
        env = {**env, "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-m", "hud", *argv]
    else:
        argv = [str(PEER_HUD), *argv]
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, encoding="utf-8",
    )  # fmt: skip


def page(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    reply = client.get(path, params={"limit": 500, **params})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) >= {"items", "total"}
    return body["items"]
