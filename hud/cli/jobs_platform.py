"""The platform backend of `hud jobs` and `hud trace` (spec platform.md §9): the same four
methods as `hud.cli.jobs_backend.LocalJobs`, read from ``HUD_API_URL`` with ``HUD_API_KEY``."""

from __future__ import annotations

from typing import Any

from hud.cli.jobs_backend import JobsError

PAGE = 500


class PlatformJobs:
    def __init__(self, api_url: str, api_key: str, web_url: str | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.web_url = (web_url or "").rstrip("/")
        self.where = self.api_url

    def _call(self, method: str, *args: Any) -> Any:
        from hud.platform.client import PlatformAPI, PlatformAPIError

        try:
            with PlatformAPI(self.api_url, self.api_key, timeout=60, retries=2) as api:
                return getattr(api, method)(*args)
        except PlatformAPIError as exc:
            if exc.status == 404:
                raise JobsError(f"{exc.message} on {self.api_url}") from None
            if exc.status in (401, 403):
                raise JobsError(
                    f"{self.api_url} refused the API key ({exc.message}); run `hud login`"
                ) from None
            raise JobsError(f"{self.api_url}: {exc.message}") from None

    def list_jobs(self, limit: int) -> list[dict[str, Any]]:
        return [_job_row(job) for job in self._call("list_jobs", max(1, min(limit, 1000)))]

    def get_job(self, job_id: str) -> dict[str, Any]:
        job = self._call("get_job", job_id)
        traces = self._call("job_traces", job_id, PAGE)
        finished = [t for t in traces if t.get("status") in ("completed", "error", "cancelled")]
        active = [t for t in traces if t not in finished]
        row = _job_row(job)
        return {
            "job_id": row["job_id"],
            "name": row["name"],
            "created_at": row["created_at"],
            "status": row["status"],
            "stats": {k: row[k] for k in ("runs", "total", "errors", "reward")},
            "config": {},
            "path": f"{self.web_url}/jobs/{row['job_id']}" if self.web_url else None,
            "runs": [_trace_row(t) for t in finished],
            "unfinished": [_trace_row(t) for t in active],
        }

    def cancel(
        self, job_id: str | None, *, trace_id: str | None, all_jobs: bool, dry_run: bool
    ) -> list[dict[str, Any]]:
        if dry_run:
            what = "every active job" if all_jobs else f"job {job_id}"
            if trace_id:
                what = f"rollout {trace_id} of job {job_id}"
            return [
                {
                    "job_id": job_id or "*",
                    "trace_id": trace_id,
                    "action": "would cancel",
                    "detail": f"{what} on {self.api_url}",
                }
            ]
        if all_jobs:
            body = self._call("cancel_user_jobs")
            return [
                {
                    "job_id": d.get("job_id"),
                    "trace_id": None,
                    "action": "cancelled",
                    "detail": f"{d.get('cancelled', 0)} active rollout(s) cancelled",
                }
                for d in body.get("job_details") or []
            ]
        if trace_id:
            accepted = self._call("cancel_trace", job_id, trace_id)
            detail = "cancellation requested" if accepted else "not found or already finished"
            return [
                {
                    "job_id": job_id,
                    "trace_id": trace_id,
                    "action": "cancelled" if accepted else "unchanged",
                    "detail": detail,
                }
            ]
        count = self._call("cancel_job", job_id)
        return [
            {
                "job_id": job_id,
                "trace_id": None,
                "action": "cancelled" if count else "unchanged",
                "detail": f"{count} active rollout(s) cancelled" if count else "no active rollouts",
            }
        ]

    def get_trace(self, trace_id: str) -> tuple[dict[str, Any], str]:
        trace = self._call("get_trace", trace_id)
        spans = self._call("request", "GET", f"/trace/{trace_id}/spans").get("items") or []
        steps = []
        for span in spans:
            attributes = span.get("attributes") or {}
            payload = attributes.get("hud.payload")
            if attributes.get("hud.schema") == "hud.step.v1" and isinstance(payload, dict):
                steps.append(payload)
        data = {
            "trace_id": trace.get("id"),
            "job_id": trace.get("job_id"),
            "slug": trace.get("task_slug"),
            "status": trace.get("status"),
            "stop_reason": trace.get("stop_reason"),
            "reward": trace.get("reward"),
            "error": trace.get("error"),
            "finished_at": trace.get("end_time"),
            "steps": steps,
            "format": "platform",
        }
        where = f"{self.web_url}/trace/{trace.get('id')}" if self.web_url else self.api_url
        return data, where


def _job_row(job: dict[str, Any]) -> dict[str, Any]:
    counts = job.get("status_counts") or {}
    total = int(job.get("trace_count") or 0)
    return {
        "job_id": job.get("id"),
        "name": job.get("name") or "",
        "status": job.get("status") or "-",
        "runs": sum(int(counts.get(s) or 0) for s in ("completed", "error", "cancelled")),
        "total": total,
        "errors": int(counts.get("error") or 0),
        "reward": job.get("reward"),
        "created_at": job.get("created_at"),
        "updated_at": None,
    }


def _trace_row(trace: dict[str, Any]) -> dict[str, Any]:
    status = trace.get("status")
    return {
        "trace_id": trace.get("id"),
        "slug": trace.get("task_slug"),
        "task_id": None,
        "group_index": None,
        "reward": trace.get("reward"),
        "status": status,
        "error": trace.get("error"),
        "is_error": status == "error",
    }


def platform_backend() -> PlatformJobs | None:
    """The platform backend when ``HUD_API_KEY`` is set, else None."""
    from hud.settings import settings

    current = settings()
    if not current.api_key:
        return None
    return PlatformJobs(current.api_url, current.api_key, current.web_url)
