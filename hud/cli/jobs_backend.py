"""Where `hud jobs` and `hud trace` read jobs from: a small backend interface.

`LocalJobs` reads the job records `hud eval` writes (``.hud/jobs``). A platform backend (the
self-hosted or hosted API) implements the same four methods; `backend_for` picks one. Each
method returns plain JSON-able data (what ``--json`` prints) or raises `JobsError` with a
one-line message; the commands only render.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Protocol, TypeGuard


class JobsError(Exception):
    """A lookup or action failed; the message is one line for the user."""


class JobsBackend(Protocol):
    #: Shown in listings ("No jobs in <where>"), e.g. the records directory or a platform URL.
    where: str

    def list_jobs(self, limit: int) -> list[dict[str, Any]]:
        """Newest first: ``job_id``, ``name``, ``status``, ``runs``, ``total``, ``errors``,
        ``reward``, ``created_at``, ``updated_at`` (and backend extras such as ``path``)."""
        ...

    def get_job(self, job_id: str) -> dict[str, Any]:
        """One job (a unique prefix is enough): its fields, ``status``, ``stats``, ``runs``
        (finished rollouts) and ``unfinished``."""
        ...

    def cancel(
        self, job_id: str | None, *, trace_id: str | None, all_jobs: bool, dry_run: bool
    ) -> list[dict[str, Any]]:
        """Cancel a job, one trace of it, or every active job; the actions taken (or planned,
        with ``dry_run``): ``{"job_id", "trace_id", "action", "detail"}``."""
        ...

    def get_trace(self, trace_id: str) -> tuple[dict[str, Any], str]:
        """A loaded trace (`hud.eval.records.load_trace_file` shape) and where it came from."""
        ...


class LocalJobs:
    """Job records written by `hud eval` under ``base_dir``."""

    def __init__(self, base_dir: Path | None = None, *, span_dir: Path | None = None) -> None:
        from hud.eval.records import DEFAULT_JOBS_DIR

        self.base_dir = Path(base_dir) if base_dir is not None else DEFAULT_JOBS_DIR
        self.span_dir = span_dir
        self.where = str(self.base_dir)

    def list_jobs(self, limit: int) -> list[dict[str, Any]]:
        from hud.eval.records import list_jobs

        return [_job_row(r) for r in list_jobs(self.base_dir)[: max(limit, 0)]]

    def _open(self, job_id: str) -> Any:
        from hud.eval.records import JobRecord

        try:
            return JobRecord.open(job_id, base_dir=self.base_dir)
        except (LookupError, ValueError, OSError) as exc:
            raise JobsError(str(exc)) from None

    def get_job(self, job_id: str) -> dict[str, Any]:
        record = self._open(job_id)
        return {
            **record.to_json(),
            "status": record.effective_status,
            "stats": record.stats(),
            "path": str(record.root),
            "runs": record.finished_runs(),
            "unfinished": _unfinished(record),
        }

    def cancel(
        self, job_id: str | None, *, trace_id: str | None, all_jobs: bool, dry_run: bool
    ) -> list[dict[str, Any]]:
        from hud.eval.records import list_jobs

        if trace_id is not None:
            raise JobsError(
                "a local job cannot cancel one of its rollouts; cancel the whole job (it can be "
                "finished later with `hud eval ... --resume JOB_ID`)"
            )
        if all_jobs:
            records = [r for r in list_jobs(self.base_dir) if r.effective_status == "running"]
        elif job_id:
            records = [self._open(job_id)]
            if records[0].effective_status != "running":
                status = records[0].effective_status
                raise JobsError(f"job {records[0].job_id} is not running (it is {status})")
        else:
            raise JobsError("name a job to cancel, or pass --all")
        actions = []
        for record in records:
            pid = record.pid
            if not _is_hud_process(pid):
                raise JobsError(
                    f"job {record.job_id}: process {pid} is not a running hud (not signalled)"
                )
            detail = f"SIGINT to hud eval (pid {pid}): it stops and records the job interrupted"
            if not dry_run:
                try:
                    os.kill(pid, signal.SIGINT)
                except OSError as exc:
                    why = f"job {record.job_id}: cannot signal pid {pid}: {exc}"
                    raise JobsError(why) from None
            actions.append(
                {
                    "job_id": record.job_id,
                    "trace_id": None,
                    "action": "would cancel" if dry_run else "cancelled",
                    "detail": detail,
                }
            )
        return actions

    def get_trace(self, trace_id: str) -> tuple[dict[str, Any], str]:
        from hud.eval.records import find_trace, load_trace_file

        try:
            path = find_trace(trace_id, self.base_dir, local_dir=self.span_dir)
            return load_trace_file(path), str(path)
        except (LookupError, ValueError, OSError) as exc:
            raise JobsError(str(exc)) from None


def backend_for(
    jobs_dir: Path | None = None, *, span_dir: Path | None = None, platform: bool | None = None
) -> JobsBackend:
    """The backend the jobs/trace commands use: the platform when ``platform`` is True, or
    when it is None, no ``jobs_dir`` was given and ``HUD_API_KEY`` is set; else local records."""
    if platform or (platform is None and jobs_dir is None):
        from hud.cli.jobs_platform import platform_backend

        remote = platform_backend()
        if remote is not None:
            return remote
        if platform:
            raise JobsError("no platform is configured: set HUD_API_KEY (or run `hud login`)")
    return LocalJobs(jobs_dir, span_dir=span_dir)


def _job_row(record: Any) -> dict[str, Any]:
    stats = record.stats()
    return {
        "job_id": record.job_id,
        "name": record.name,
        "status": record.effective_status,
        "runs": stats["runs"],
        "total": stats["total"],
        "errors": stats["errors"],
        "reward": stats["reward"],
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "path": str(record.root),
    }


def _unfinished(record: Any) -> list[dict[str, Any]]:
    import json

    out = []
    for path in record.unfinished_traces():
        try:
            with open(path, encoding="utf-8") as fh:
                header = json.loads(fh.readline())
        except (OSError, ValueError):
            header = {}
        out.append(
            {
                "trace_id": path.stem,
                "slug": header.get("slug"),
                "task_id": header.get("task_id"),
                "group_index": header.get("group_index"),
                "reward": None,
                "status": "unfinished",
                "error": None,
                "is_error": True,
            }
        )
    return out


def _is_hud_process(pid: Any) -> TypeGuard[int]:
    """``pid`` is alive and runs hud (a recycled pid of another program is never signalled)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"hud" in cmdline
