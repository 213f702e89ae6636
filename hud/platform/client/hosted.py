"""`HostedRuntime`: rollouts run by the platform (spec platform.md §6, runtimes-agents.md §1.6).

Not a provider of runtimes: the job runner hands it whole rollouts (`run_rollout`). Per
rollout: ``POST /v2/rollouts/submit`` with the agent's type and portable config (never keys or
base URLs), then ``GET /v2/rollouts/<id>/wait`` (our platform's long poll; elsewhere
``GET /v2/trace/<id>`` polling) until the status is terminal; the platform reports the trace
itself, so this client sends no trace enter/exit or spans. Cancellation or a rollout timeout
sends ``POST /v2/rollouts/cancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from typing import Any

import httpx

TERMINAL = ("completed", "error", "cancelled")
#: Seconds one long poll may wait for a rollout's end.
LONG_POLL = 20.0
#: Agent config fields that never leave this machine.
PRIVATE = ("model_client", "api_key", "api_key_env", "base_url", "hosted_tools")


class HostedRuntime:
    """Placement of whole rollouts on the platform."""

    def __init__(
        self,
        agent_type: str,
        *,
        api_url: str | None = None,
        api_key: str | None = None,
        poll_interval: float = 2.0,
        submit_wait: float = 600.0,
    ) -> None:
        from hud.settings import settings

        current = settings()
        self.agent_type = agent_type
        self.api_url = (api_url or current.api_url).rstrip("/")
        self.api_key = api_key or current.api_key
        if not self.api_key:
            raise ValueError("hosted rollouts need HUD_API_KEY (run `hud login`)")
        self.poll_interval = poll_interval
        #: Seconds a submit refused with 429/503 (the platform's queue is full) is retried
        #: (after each ``Retry-After``) before the rollout fails with the platform's reason.
        self.submit_wait = submit_wait
        #: Whether the platform serves the long poll (``GET /v2/rollouts/<id>/wait``).
        self._long_poll = True

    def __repr__(self) -> str:
        return f"HostedRuntime({self.api_url!r})"

    def __call__(self, task: Any) -> Any:  # pragma: no cover - the runner calls run_rollout
        raise TypeError("HostedRuntime runs whole rollouts (run_rollout), not runtimes")

    def agent_spec(self, agent: Any, task: Any) -> dict[str, Any]:
        config = getattr(agent, "config", None)
        dump: dict[str, Any] = {}
        if config is not None and hasattr(config, "model_dump"):
            dump = config.model_dump(mode="json", exclude=set(PRIVATE), exclude_none=False)
        for key in PRIVATE:
            dump.pop(key, None)
        dump.update(getattr(task, "agent_config", None) or {})
        return {"type": self.agent_type, "config": dump}

    async def run_rollout(
        self,
        task: Any,
        agent: Any,
        *,
        job_id: str,
        group_id: str | None,
        trace: Any,
        rollout_timeout: float | None = None,
    ) -> Any:
        from hud.eval.run import Grade, Run

        trace_uuid = uuid.UUID(str(trace.trace_id)) if trace.trace_id else uuid.uuid4()
        trace.trace_id = trace_uuid.hex
        body: dict[str, Any] = {
            "trace_id": str(trace_uuid),
            "job_id": str(uuid.UUID(job_id)),
            "env": task.env,
            "task": task.id,
            "slug": task.slug,
            "args": dict(task.args),
            "agent": self.agent_spec(agent, task),
        }
        if group_id:
            body["group_id"] = group_id
        if task.runtime_config is not None:
            body["runtime_config"] = task.runtime_config.model_dump(mode="json", exclude_none=True)
        if task.verifier is not None:
            body["verifier"] = task.verifier.model_dump(mode="json", exclude_none=True)
        run = Run(None, task.id, task.args, task=task, trace=trace)
        run.runtime = f"hud://trace/{trace_uuid}"
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=60) as http:
            try:
                async with asyncio.timeout(rollout_timeout):
                    reply = await http.post("/v2/rollouts/submit", json=body)
                    waited = 0.0
                    while reply.status_code in (429, 503) and waited < self.submit_wait:
                        pause = min(_retry_after(reply), self.submit_wait - waited)
                        await asyncio.sleep(pause)  # the queue is full: wait our turn
                        waited += pause
                        reply = await http.post("/v2/rollouts/submit", json=body)
                    if reply.status_code >= 300:
                        return _failed(
                            run, f"submit refused ({reply.status_code}): {_detail(reply)}"
                        )
                    delay = 0.25  # soon after submitting, then every poll_interval
                    while True:
                        if self._long_poll:  # our platform answers once the trace ends
                            got = await http.get(
                                f"/v2/rollouts/{trace_uuid}/wait",
                                params={"timeout": LONG_POLL},
                                timeout=LONG_POLL + 30,
                            )
                            if got.status_code in (404, 405):  # a platform without it
                                self._long_poll = False
                                continue
                        else:
                            got = await http.get(f"/v2/trace/{trace_uuid}")
                        if got.status_code == 200:
                            data = got.json()
                            if data.get("status") in TERMINAL:
                                break
                            if self._long_poll:
                                continue
                        await asyncio.sleep(delay)
                        delay = min(self.poll_interval, delay * 1.5)
            except TimeoutError:
                await _cancel(http, trace_uuid)
                trace.stop_reason = "timeout"
                return _failed(run, f"rollout timed out after {rollout_timeout:g}s")
            except asyncio.CancelledError:
                await _cancel(http, trace_uuid)
                raise
            except httpx.HTTPError as exc:
                return _failed(run, f"platform unreachable: {exc}")
        status = data["status"]
        grade = data.get("evaluation_result")
        reward = data.get("reward")
        if isinstance(grade, dict) and _finite(grade.get("score")):
            run.grade = Grade.from_frame(grade)
        elif _finite(reward) and status == "completed":
            run.grade = Grade(reward=float(reward))
        trace.status = status
        trace.stop_reason = data.get("stop_reason") or trace.stop_reason
        if status != "completed" or run.grade is None:
            why = (
                data.get("error")
                or {
                    "completed": "rollout finished without a grade",
                    "error": "rollout failed before grading",
                    "cancelled": "rollout was cancelled before grading",
                }[status]
            )
            return _failed(run, str(why), status="cancelled" if status == "cancelled" else "error")
        return run


def _retry_after(reply: httpx.Response) -> float:
    try:
        return min(30.0, max(0.5, float(reply.headers.get("retry-after", "5"))))
    except ValueError:
        return 5.0


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _detail(reply: httpx.Response) -> str:
    try:
        return str(reply.json().get("detail"))
    except Exception:
        return reply.text[:200]


def _failed(run: Any, error: str, *, status: str = "error") -> Any:
    from hud.types.trace import system_step

    run.trace.status = status
    run.trace.record(system_step(error))
    return run


async def _cancel(http: httpx.AsyncClient, trace_uuid: uuid.UUID) -> None:
    with contextlib.suppress(Exception):
        await asyncio.shield(
            http.post("/v2/rollouts/cancel", json={"trace_id": str(trace_uuid)}, timeout=5)
        )
