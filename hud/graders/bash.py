"""`BashGrader`: 1.0 iff a bash command exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import Mapping
from typing import IO, Any, Protocol, runtime_checkable

from hud.graders.base import Grader
from hud.graders.scores import SubScore

BASH = "/bin/bash"
DEFAULT_TIMEOUT = 600.0


@runtime_checkable
class CommandRunner(Protocol):
    """Runs a command inside a sandbox (e.g. a `Workspace`) for ``BashGrader(workspace=...)``.

    ``exec`` runs ``bash -lc <command>`` and returns a mapping or object with ``exit_code``,
    ``stdout`` and ``stderr`` (and optionally ``timed_out``).
    """

    async def exec(
        self, command: str, *, cwd: str | None = None, timeout: float | None = None
    ) -> Any: ...


def _failure(reason: str) -> dict[str, Any]:
    return {"exit_code": None, "stdout": "", "stderr": reason, "timed_out": False}


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode("utf-8", errors="replace")


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run_bash(command: str, cwd: str | None, timeout: float) -> dict[str, Any]:
    """Run ``/bin/bash -lc command`` on this host; the info dict `BashGrader` reports."""
    if os.name == "nt":
        return _failure(
            "BashGrader runs /bin/bash, which Windows hosts lack; pass workspace= to run it "
            "in a sandbox"
        )
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = await asyncio.create_subprocess_exec(
                BASH,
                "-lc",
                command,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            if cwd is not None and exc.filename == cwd:
                return _failure(f"working directory not found: {cwd}")
            return _failure(f"{BASH} not found")
        except OSError as exc:
            return _failure(f"could not start {BASH}: {exc}")
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            _kill_group(proc)
            await proc.wait()
            return {
                "exit_code": None,
                "stdout": _read(out),
                "stderr": _read(err),
                "timed_out": True,
                "timeout": timeout,
            }
        finally:
            if proc.returncode is None:  # cancelled
                _kill_group(proc)
        return {"exit_code": proc.returncode, "stdout": _read(out), "stderr": _read(err)}


def _field(result: Any, key: str, default: Any = None) -> Any:
    if isinstance(result, Mapping):
        return result.get(key, default)
    return getattr(result, key, default)


async def run_in_workspace(
    workspace: CommandRunner, command: str, cwd: str | None, timeout: float
) -> dict[str, Any]:
    """Run the command through ``workspace.exec``; same info shape as `run_bash`."""
    try:
        result = await asyncio.wait_for(workspace.exec(command, cwd=cwd, timeout=timeout), timeout)
    except TimeoutError:
        result = {"exit_code": None, "stdout": "", "stderr": "", "timed_out": True}
    if _field(result, "timed_out", False):
        return {
            "exit_code": None,
            "stdout": _field(result, "stdout", "") or "",
            "stderr": _field(result, "stderr", "") or "",
            "timed_out": True,
            "timeout": timeout,
        }
    return {
        "exit_code": _field(result, "exit_code"),
        "stdout": _field(result, "stdout", "") or "",
        "stderr": _field(result, "stderr", "") or "",
    }


class BashGrader(Grader):
    """1.0 iff ``/bin/bash -lc <command>`` exits 0 in ``cwd``; info has exit code and output.

    By default the command runs on the environment host (not in the agent's sandbox); pass
    ``workspace=`` (an object with an async ``exec``, see `CommandRunner`) to run it there.
    """

    name = "BashGrader"

    @classmethod
    async def compute_score(
        cls,
        command: str | None = None,
        cwd: str | None = None,
        timeout_seconds: float | None = None,
        workspace: CommandRunner | None = None,
        **kwargs: Any,
    ) -> SubScore:
        """Run the command; timeouts and start failures score 0.0 with a reason in info."""
        if command is None:
            raise ValueError("BashGrader requires command")
        timeout = DEFAULT_TIMEOUT if timeout_seconds is None else timeout_seconds
        if workspace is not None:
            info = await run_in_workspace(workspace, command, cwd, timeout)
        else:
            info = await run_bash(command, cwd, timeout)
        value = 1.0 if info["exit_code"] == 0 and not info.get("timed_out") else 0.0
        return SubScore(name=cls.name, value=value, info=info)
