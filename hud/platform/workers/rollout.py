"""One hosted rollout, run by a worker process: ``python -m hud.platform.workers.rollout``.

The platform (or a Ray task on any node) starts this process with the rollout's spec as JSON
on stdin — never on the command line, it carries the environment's secrets — and an
environment holding only the platform's URLs and the submitting team's HUD key (no provider
keys: the agent reaches its model through the platform's gateway).

The process runs the library job runner (`hud.eval.run_job`) on one row, in a fresh container
of the environment's deployed image (`DockerRuntime`), and reports the trace through the same
path a local ``hud eval`` uses (`hud.platform.client.report.subscribe`), under the trace id the
client submitted. SIGTERM cancels the rollout: the container is removed and the trace exits
``cancelled``. Exit status 0 once the trace is reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

#: Spec keys (all JSON): trace_id, job_id, group_id?, env, task, slug?, args, agent {type,
#: config}, runtime {runtime_config, environment_variables}, rollout_timeout?, metadata?.


class _Renamed:
    """A `Reporter` front that reports the runner's trace under the submitted id and leaves
    the job (entered by the client) alone."""

    def __init__(
        self,
        reporter: Any,
        trace_hex: str,
        metadata: dict[str, Any] | None,
        group_id: str | None = None,
    ) -> None:
        self.reporter = reporter
        self.trace_hex = trace_hex
        self.metadata = metadata
        self.group_id = group_id

    def job_enter(self, *_a: Any, **_k: Any) -> None:
        return None

    def trace_enter(self, _trace_id: str, **fields: Any) -> None:
        # the submitted group (the client's), not this worker's one-row job's
        fields["group_id"] = self.group_id
        self.reporter.trace_enter(self.trace_hex, **fields)

    def span(self, _trace_id: str, span: dict[str, Any]) -> None:
        self.reporter.span(self.trace_hex, span)

    def trace_exit(self, _trace_id: str, **fields: Any) -> None:
        if self.metadata:
            fields["metadata"] = {**(fields.get("metadata") or {}), **self.metadata}
        self.reporter.trace_exit(self.trace_hex, **fields)


def _agent(spec: dict[str, Any]) -> Any:
    """The agent the spec names, its calls routed to the platform's gateway. The official
    client sends its own config dump: fields ours does not know are dropped, and a config
    ours cannot read falls back to the portable settings."""
    from hud.agents.factory import create_agent

    agent = spec.get("agent") or {}
    kind = str(agent.get("type") or "")
    config = dict(agent.get("config") or {})
    model = config.pop("model", None) or config.pop("checkpoint_name", None)
    known = _known_fields(kind)
    if known is not None:
        config = {k: v for k, v in config.items() if k in known}
    for key in ("api_key", "api_key_env", "base_url", "model_client", "hosted_tools"):
        config.pop(key, None)
    config["gateway"] = True
    try:
        return create_agent(kind, model=model, config=config)
    except ValueError:
        portable = {k: config[k] for k in PORTABLE if config.get(k) is not None}
        return create_agent(kind, model=model, config={**portable, "gateway": True})


#: Agent settings every agent type reads the same way.
PORTABLE = ("max_steps", "system_prompt", "timeout_seconds", "auto_respond", "max_tokens")


def _known_fields(kind: str) -> set[str] | None:
    try:
        import importlib

        from hud.agents.factory import PROVIDER_CLASSES

        module, class_name = PROVIDER_CLASSES[kind]
        cls = getattr(importlib.import_module(module), class_name)
        return set(cls.config_cls.model_fields)
    except Exception:
        return None


async def run(spec: dict[str, Any]) -> int:
    from hud.eval import Job, run_job
    from hud.eval.runtimes.docker import DockerRuntime
    from hud.platform.client.report import event_handler, reporter_from_settings
    from hud.types.task import Task

    trace_hex = str(spec["trace_id"]).replace("-", "")
    job_hex = str(spec["job_id"]).replace("-", "")
    reporter = reporter_from_settings()
    if reporter is None:
        print("no platform to report to (HUD_API_KEY / HUD_API_URL)", file=sys.stderr)
        return 2
    metadata = dict(spec.get("metadata") or {})
    if os.environ.get("HUD_WORKER_NODE"):  # the Ray node that ran it
        metadata["node"] = os.environ["HUD_WORKER_NODE"]
    group = spec.get("group_id")
    renamed = _Renamed(
        reporter, trace_hex, metadata, str(group).replace("-", "") if group else None
    )
    try:
        runtime_spec = spec.get("runtime") or {}
        row = {
            "env": spec["env"],
            "id": spec["task"],
            "args": spec.get("args") or {},
            "runtime_config": runtime_spec.get("runtime_config"),
        }
        if spec.get("slug"):
            row["slug"] = spec["slug"]
        task = Task.model_validate(row)
        agent = _agent(spec)
        runtime = DockerRuntime(
            runtime_config=runtime_spec.get("runtime_config"),
            env_vars=runtime_spec.get("environment_variables") or {},
            prefork=0,
        )
    except Exception as exc:  # a spec that cannot run: an errored trace, not a crash
        renamed.trace_exit("", status="error", reward=0.0, error=f"{type(exc).__name__}: {exc}")
        reporter.close(timeout=30)
        return 0

    job = Job(id=job_hex, name=str(spec.get("slug") or spec["task"]), group=1)

    def rename(_task: Any, trace: Any) -> None:
        trace.trace_id = trace_hex

    job.on_start(rename)
    model = getattr(getattr(agent, "config", None), "model", None)
    on_event = event_handler(renamed, model=model)  # type: ignore[arg-type]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    timeout = spec.get("rollout_timeout")
    try:
        result = await run_job(
            task,
            agent,
            placement=runtime,
            job=job,
            stop=stop,
            on_event=on_event,
            rollout_timeout=float(timeout) if timeout else None,
        )
        if stop.is_set() or not result.job.runs:
            renamed.trace_exit("", status="cancelled", reward=0.0, error="cancelled")
    except Exception as exc:
        renamed.trace_exit("", status="error", reward=0.0, error=f"{type(exc).__name__}: {exc}")
    finally:
        await runtime.aclose()
        stats = reporter.close(timeout=30)
    return 0 if not stats.dropped else 1


def main() -> None:
    # Imported before the spec arrives: a worker started ahead of need (`LocalExecutor`'s warm
    # processes) has paid for them already.
    import hud.agents.factory
    import hud.eval.runner
    import hud.eval.runtimes.docker
    import hud.platform.client.report  # noqa: F401

    spec = json.loads(sys.stdin.read() or "null")
    if not isinstance(spec, dict):  # closed unused (the platform stopped)
        sys.exit(0)
    environ = spec.pop("environ", None)
    if isinstance(environ, dict):  # the team's key and the platform's URLs, sent with the spec
        os.environ.update({str(k): str(v) for k, v in environ.items()})
        from hud.settings import reload

        reload()
    sys.exit(asyncio.run(run(spec)))


if __name__ == "__main__":
    main()
