"""`LocalSource`: the pages over local job records (``.hud/jobs``, see `hud.eval.records`).

``runs.jsonl`` files are parsed once and kept while their size and mtime do not change, so a
job of 10,000 rollouts is read from disk once, and a running job's page re-reads only when a
rollout finished. Figures follow `hud.types.job.JobSummary`'s definitions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hud.eval.records import JobRecord, find_trace, list_jobs, load_trace_file
from hud.platform.web.data import (
    GROUPS_SHOWN,
    Bin,
    GroupStat,
    JobDetail,
    JobRow,
    JobsPage,
    RolloutRow,
    RolloutsPage,
    TraceView,
    group_stats,
    histogram,
    pooled_std,
)
from hud.types.job import SUCCESS_THRESHOLD

#: In-flight rollouts of a running job listed after its finished ones.
IN_FLIGHT_SHOWN = 500
#: Parsed ``runs.jsonl`` files kept (their size/mtime are checked on every read).
CACHE_SIZE = 64


class LocalSource:
    """Job records under ``jobs_dir`` (read-only; the directory may change while served)."""

    statuses = ("running", "completed", "interrupted", "failed")

    def __init__(self, jobs_dir: Path) -> None:
        self.jobs_dir = Path(jobs_dir)
        self._cache: dict[Path, _Parsed] = {}

    # -- reading -------------------------------------------------------------------------
    def _parsed(self, record: JobRecord) -> _Parsed:
        path = record.runs_file
        try:
            st = os.stat(path)
        except OSError:
            return _Parsed((0, 0), [])
        stamp = (st.st_size, st.st_mtime_ns)
        cached = self._cache.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached
        rows = []
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a torn last line
                if isinstance(row, dict):
                    rows.append(row)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        parsed = self._cache[path] = _Parsed(stamp, rows)
        return parsed

    def _runs(self, record: JobRecord) -> list[dict[str, Any]]:
        return self._parsed(record).rows

    def _row(self, record: JobRecord, *, listing: bool = False) -> JobRow:
        summary = record.summary
        if listing and record.status != "running" and isinstance(summary.get("run_count"), int):
            # a finished job's job.json holds its figures: a list of big jobs reads no runs.jsonl
            runs, errors = summary["run_count"], int(summary.get("error_count") or 0)
            reward = summary.get("mean_reward_excluding_errors")
        else:
            figures = self._parsed(record).figures()
            runs, errors, reward = figures.runs, figures.errors, figures.reward
        total = record.summary.get("total") or record.config.get("total")
        slugs = record.config.get("slugs")
        group = record.config.get("group")
        if not isinstance(total, int) and isinstance(slugs, list) and isinstance(group, int):
            total = len(slugs) * group
        return JobRow(
            id=record.job_id,
            name=record.name,
            status=record.effective_status,
            created_at=record.created_at,
            runs=runs,
            total=total if isinstance(total, int) else None,
            errors=errors,
            reward=reward if isinstance(reward, (int, float)) else None,
        )

    def _open(self, job_id: str) -> JobRecord | None:
        try:
            return JobRecord.open(job_id.replace("-", ""), base_dir=self.jobs_dir)
        except (LookupError, ValueError, OSError):
            try:
                return JobRecord.open(job_id, base_dir=self.jobs_dir)
            except (LookupError, ValueError, OSError):
                return None

    # -- ViewSource ----------------------------------------------------------------------
    async def jobs(
        self, *, query: str = "", status: str = "", offset: int = 0, limit: int = 50
    ) -> JobsPage:
        records = list_jobs(self.jobs_dir)
        needle = query.strip().lower()
        if needle:
            bare = needle.replace("-", "")
            records = [r for r in records if needle in r.name.lower() or bare in r.job_id.lower()]
        if status:
            records = [r for r in records if r.effective_status == status]
        shown = [self._row(r, listing=True) for r in records[offset : offset + limit]]
        return JobsPage(shown, len(records), offset, limit)

    async def job(self, job_id: str) -> JobDetail | None:
        record = self._open(job_id)
        if record is None:
            return None
        head = self._row(record)
        f = self._parsed(record).figures()
        in_flight = len(record.unfinished_traces()) if head.status == "running" else 0
        config = record.config
        info = {
            k: config.get(k)
            for k in ("source_label", "agent", "model", "group", "max_steps", "runtime")
            if config.get(k) not in (None, "", {})
        }
        return JobDetail(
            job=head,
            status_counts=dict(f.counts),
            rewarded=f.rewarded,
            mean_reward=f.mean,
            reward_std=f.std,
            success_rate=f.success_rate,
            histogram=f.histogram,
            group_count=len(f.groups),
            within_group_std=pooled_std(f.groups),
            groups=f.groups[:GROUPS_SHOWN],
            in_flight=in_flight,
            info=info,
        )

    async def rollouts(
        self,
        job_id: str,
        *,
        status: str = "",
        sort: str = "",
        offset: int = 0,
        limit: int = 50,
    ) -> RolloutsPage | None:
        record = self._open(job_id)
        if record is None:
            return None
        rows: list[dict[str, Any]] = list(self._runs(record))
        if record.effective_status == "running":
            rows += _in_flight(record)
        if status == "error":
            rows = [r for r in rows if r.get("is_error")]
        elif status:
            rows = [r for r in rows if r.get("status") == status and not r.get("is_error")]
        if sort in ("reward", "-reward"):
            sign = -1.0 if sort == "-reward" else 1.0
            unrewarded = [r for r in rows if r.get("is_error") or r.get("status") == "running"]
            rewarded = [r for r in rows if not (r.get("is_error") or r.get("status") == "running")]
            rows = sorted(rewarded, key=lambda r: sign * _reward(r)) + unrewarded
        items = [
            RolloutRow(
                trace_id=str(r.get("trace_id") or ""),
                slug=r.get("slug"),
                group=r.get("slug"),
                group_index=r.get("group_index"),
                status="error" if r.get("is_error") else r.get("status"),
                reward=None if r.get("is_error") or r.get("status") == "running" else _reward(r),
                duration_s=r.get("duration_s"),
                error=r.get("error"),
                started_at=r.get("finished_at") or r.get("started_at"),
            )
            for r in rows[offset : offset + limit]
        ]
        return RolloutsPage(items, len(rows), offset, limit)

    async def trace(self, trace_id: str) -> TraceView | None:
        try:
            path = find_trace(trace_id, self.jobs_dir)
            if self.jobs_dir.resolve() not in path.resolve().parents:
                return None  # a path given as the id: only records under jobs_dir are served
            data = load_trace_file(path)
        except (LookupError, ValueError, OSError):
            return None
        job_name = None
        job_id = data.get("job_id")
        try:
            job_name = JobRecord.load(path.parent.parent).name
        except (ValueError, OSError):
            pass
        steps = [s for s in data.get("steps") or [] if isinstance(s, dict)]
        model = next((s.get("model") for s in steps if s.get("source") == "agent"), None)
        status = data.get("status")
        if status is None and data.get("is_error"):
            status = "error"
        return TraceView(
            id=str(data.get("trace_id") or path.stem),
            job_id=job_id,
            job_name=job_name,
            slug=data.get("slug"),
            status=status,
            reward=data.get("reward"),
            error=data.get("error"),
            stop_reason=data.get("stop_reason"),
            model=model,
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            duration_s=data.get("duration_s"),
            grade=data.get("grade") if isinstance(data.get("grade"), dict) else None,
            answer=data.get("content"),
            args=data.get("args") if isinstance(data.get("args"), dict) else None,
            steps=steps,
        )


@dataclass
class _Figures:
    """A job's figures over its finished rows (`hud.types.job.JobSummary`'s definitions)."""

    runs: int
    errors: int
    reward: float | None  # mean excluding errors
    counts: dict[str, int]
    rewarded: int
    mean: float | None  # errors as 0
    std: float | None
    success_rate: float | None
    histogram: list[Bin]
    groups: list[GroupStat]

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> _Figures:
        counts: dict[str, int] = {}
        effective: list[float] = []
        graded: list[float] = []
        by_group: dict[str, list[float]] = {}
        for r in rows:
            if r.get("is_error"):
                counts["error"] = counts.get("error", 0) + 1
                effective.append(0.0)
                continue
            key = str(r.get("status") or "completed")
            counts[key] = counts.get(key, 0) + 1
            value = _reward(r)
            effective.append(value)
            graded.append(value)
            group = str(r.get("slug") or r.get("task_id") or "task")
            by_group.setdefault(group, []).append(value)
        n = len(effective)
        mean = sum(effective) / n if n else None
        std = None
        if n and mean is not None:
            std = max(0.0, sum(x * x for x in effective) / n - mean * mean) ** 0.5
        return cls(
            runs=n,
            errors=counts.get("error", 0),
            reward=sum(graded) / len(graded) if graded else None,
            counts=counts,
            rewarded=len(graded),
            mean=mean,
            std=std,
            success_rate=(sum(1 for x in effective if x > SUCCESS_THRESHOLD) / n) if n else None,
            histogram=histogram(graded),
            groups=group_stats((k, k, v) for k, v in by_group.items() if len(v) > 1),
        )


@dataclass
class _Parsed:
    """One ``runs.jsonl`` as read at ``stamp`` (size, mtime), and its figures once asked."""

    stamp: tuple[int, int]
    rows: list[dict[str, Any]]
    _figures: _Figures | None = None

    def figures(self) -> _Figures:
        if self._figures is None:
            self._figures = _Figures.of(self.rows)
        return self._figures


def _in_flight(record: JobRecord) -> list[dict[str, Any]]:
    """Rows for the rollouts of a running job that have not finished (their header line)."""
    out = []
    for path in record.unfinished_traces()[:IN_FLIGHT_SHOWN]:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                head = json.loads(fh.readline() or "{}")
        except (OSError, ValueError):
            continue
        if isinstance(head, dict):
            out.append(
                {
                    "trace_id": head.get("trace_id") or path.stem,
                    "slug": head.get("slug"),
                    "group_index": head.get("group_index"),
                    "status": "running",
                    "started_at": head.get("started_at"),
                }
            )
    return out


def _reward(row: dict[str, Any]) -> float:
    value = row.get("reward")
    return float(value) if isinstance(value, (int, float)) else 0.0
