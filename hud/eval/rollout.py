"""`rollout`: one task, one agent, one fresh substrate; failures become failed runs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hud.clients import connect
from hud.eval.agent import AgentProtocol
from hud.eval.filetracking import diff_workspace
from hud.eval.run import Grade, Run
from hud.eval.runtime import Provider
from hud.eval.task import Task
from hud.telemetry import attach as attach_spans
from hud.types.trace import Trace, system_step

#: Where each rollout runs (kept as an alias of the provider contract).
Placement = Provider


def agent_timeout(agent: AgentProtocol, task: Task) -> float | None:
    """The agent's ``timeout_seconds``, overridden by the row's ``agent_config``."""
    value = getattr(getattr(agent, "config", None), "timeout_seconds", None)
    row = (task.agent_config or {}).get("timeout_seconds")
    if row is not None:
        value = row
    return float(value) if value else None


def validate_timeouts(task: Task, agent: AgentProtocol, rollout_timeout: float | None) -> None:
    """Reject contradictory timeouts before anything runs."""
    agent_t = agent_timeout(agent, task)
    if rollout_timeout is not None and rollout_timeout <= 0:
        raise ValueError(f"rollout_timeout must be > 0, got {rollout_timeout}")
    limits = []
    for row in (task, task.verifier):
        if row is not None and row.runtime_config and row.runtime_config.limits:
            limits.append(row.runtime_config.limits)
    actor = task.runtime_config.limits if task.runtime_config else None
    if agent_t and actor and actor.run_timeout_s and agent_t >= actor.run_timeout_s:
        raise ValueError(
            f"task {task.slug}: agent timeout {agent_t}s must be below run_timeout_s "
            f"{actor.run_timeout_s}s"
        )
    if rollout_timeout is None:
        return
    if agent_t and agent_t >= rollout_timeout:
        raise ValueError(
            f"task {task.slug}: agent timeout {agent_t}s must be below rollout_timeout "
            f"{rollout_timeout}s"
        )
    for lim in limits:
        for name in ("startup_timeout_s", "run_timeout_s"):
            value = getattr(lim, name)
            if value and value >= rollout_timeout:
                raise ValueError(
                    f"task {task.slug}: {name} {value}s must be below rollout_timeout "
                    f"{rollout_timeout}s"
                )


class _State:
    def __init__(self) -> None:
        self.phase = "provisioning"
        self.run: Run | None = None


async def rollout(
    task: Task,
    agent: AgentProtocol,
    *,
    runtime: Placement,
    job_id: str | None = None,
    group_id: str | None = None,
    trace_id: str | None = None,
    rollout_timeout: float | None = None,
    trace: Trace | None = None,
) -> Run:
    """Provision, start, let the agent work, grade (and verify); never raises for a failure
    inside the rollout: the returned `Run` carries status ``error`` and the phase instead."""
    validate_timeouts(task, agent, rollout_timeout)
    trace = trace or Trace()
    trace.trace_id = trace_id or trace.trace_id or uuid.uuid4().hex
    attach_spans(trace)
    state = _State()
    deadline = asyncio.timeout(rollout_timeout)
    try:
        async with deadline:
            await _drive(task, agent, runtime, trace, state)
    except TimeoutError as exc:
        if not deadline.expired():
            _fail(state, task, trace, exc)
            return _stamp(state, job_id, group_id, task)
        what = f"rollout timed out after {rollout_timeout:g}s during {state.phase}"
        if state.run is None:
            state.run = Run.failed(what, task=task, trace=trace)
        else:
            state.run.trace.record(system_step(what))
        trace.status = "error"
        trace.stop_reason = "timeout"
    except Exception as exc:
        _fail(state, task, trace, exc)
    return _stamp(state, job_id, group_id, task)


def _fail(state: _State, task: Task, trace: Trace, exc: BaseException) -> None:
    detail = f"[{state.phase}] {type(exc).__name__}: {exc}"
    if state.run is None:
        state.run = Run.failed(detail, task=task, trace=trace)
    else:
        trace.status = "error"
        trace.record(system_step(detail))


def _stamp(state: _State, job_id: str | None, group_id: str | None, task: Task) -> Run:
    run = state.run
    assert run is not None
    run.job_id = job_id
    run.group_id = group_id
    run.slug = task.slug
    return run


async def _drive(
    task: Task, agent: AgentProtocol, runtime: Placement, trace: Trace, state: _State
) -> None:
    async with runtime(task) as rt:
        state.phase = "starting task"
        async with connect(rt) as client:
            run = Run(
                client,
                task.id,
                task.args,
                task=task,
                trace=trace,
                best_effort_grade=task.verifier is not None,
            )
            run.runtime = getattr(rt, "url", None)
            await run.__aenter__()
            state.run = run
            try:
                state.phase = "agent loop"
                await _agent_loop(agent, run, agent_timeout(agent, task))
                await diff_workspace(run)  # the agent's file changes, when the env tracks them
                state.phase = "grading"
                await run.submit(best_effort=run.best_effort_grade or trace.status == "error")
                if task.verifier is not None and run.grade is not None:
                    state.phase = "verifying"
                    await _verify(task, run, client, runtime)
            except BaseException as exc:
                if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
                    await run.__aexit__(type(exc), exc, None)
                raise
            state.phase = "cleanup"


async def _agent_loop(agent: AgentProtocol, run: Run, timeout: float | None) -> None:
    trace = run.trace
    try:
        async with asyncio.timeout(timeout):
            await agent(run)
    except TimeoutError:
        trace.status = "error"
        trace.stop_reason = "timeout"
        trace.record(system_step(f"agent timed out after {timeout:g}s"))
    except Exception as exc:
        trace.status = "error"
        trace.record(system_step(f"[agent loop] {type(exc).__name__}: {exc}"))


async def _verify(task: Task, run: Run, client: Any, runtime: Placement) -> None:
    """Grade the actor's grade frame with the verifier task, replacing the actor's grade."""
    verifier = task.verifier
    assert verifier is not None and run.grade is not None
    actor_frame = run.grade.raw
    if verifier.env == task.env and verifier.runtime_config is None:
        await client.start(verifier.id, verifier.args)
        frame = await client.grade(actor_frame)
    else:
        async with runtime(verifier) as rt, connect(rt) as vclient:
            await vclient.start(verifier.id, verifier.args)
            frame = await vclient.grade(actor_frame)
    run.grade = Grade.from_frame(frame)
