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

With ``--serve`` (the platform's own workers, `hud.platform.workers.local`) the process serves
one spec after another, each on its own stdin line, until stdin ends: after each rollout its
containers are gone and its environment is back to what the process started with (no key, no
secret), and it writes ``DONE <status> <reusable>`` on stdout (the protocol's only writer:
anything else printed there is discarded). ``reusable`` is 0 unless the rollout completed,
was not cancelled and left nothing behind; a process that says 0 then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
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
        #: The status the trace exited with (None: not yet).
        self.status: str | None = None

    def job_enter(self, *_a: Any, **_k: Any) -> None:
        return None

    def trace_enter(self, _trace_id: str, **fields: Any) -> None:
        # the submitted group (the client's), not this worker's one-row job's
        fields["group_id"] = self.group_id
        self.reporter.trace_enter(self.trace_hex, **fields)

    def span(self, _trace_id: str, span: dict[str, Any]) -> None:
        self.reporter.span(self.trace_hex, span)

    def trace_exit(self, _trace_id: str, **fields: Any) -> None:
        first, self.status = self.status is None, fields.get("status")
        if self.metadata:
            fields["metadata"] = {**(fields.get("metadata") or {}), **self.metadata}
        self.reporter.trace_exit(self.trace_hex, **fields)
        if first and self.status == "completed":
            _say(ENDING)  # likely free again soon: the platform may wait for it


#: The lines a ``--serve`` worker writes: ``ENDING`` once its rollout's trace completed (it
#: tears down next), ``DONE <status> <reusable>`` once that is over.
ENDING = "ENDING"
DONE = "DONE"
#: Rollouts a ``--serve`` worker runs at most before it exits (whatever a rollout leaves in
#: the process's memory stays bounded).
SERVE_AT_MOST = 100
#: The ``--serve`` protocol's stream (the process's original stdout), else None.
_protocol: Any = None


def _say(line: str) -> None:
    if _protocol is not None:
        with contextlib.suppress(OSError, ValueError):
            _protocol.write(line + "\n")


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


def primed_runtime(runtime_spec: dict[str, Any]) -> Any:
    """A `DockerRuntime` whose first container starts now, before its rollout is known (a
    warm worker primed for an environment, `LocalExecutor`): that container is fresh and
    serves exactly one rollout — the first that asks for the same config; otherwise it is
    removed and a new one started."""
    from hud.eval.runtimes.docker import DockerRuntime, container_state
    from hud.types.task import Task

    class PrimedRuntime(DockerRuntime):
        primed: tuple[Any, asyncio.Future[Any]] | None = None

        def prime(self) -> None:
            task = Task(env="primed", id="primed", runtime_config=self.runtime_config)
            config = self.config_for(task)
            self.primed = (config, asyncio.ensure_future(super()._start(config)))

        async def _start(self, config: Any) -> Any:
            box = await self.take_primed()
            if box is not None:
                if box[0] == config and (await container_state(box[1].container)).get("Running"):
                    return box[1]
                await self._remove(box[1])
            return await super()._start(config)

        async def take_primed(self) -> tuple[Any, Any] | None:
            primed, self.primed = self.primed, None
            if primed is None:
                return None
            try:
                return primed[0], await primed[1]
            except Exception:  # it failed to start: a fresh start reports why
                return None

        async def aclose(self) -> None:
            unused = await self.take_primed()
            if unused is not None:
                await self._remove(unused[1])
            await super().aclose()

    runtime = PrimedRuntime(
        runtime_config=runtime_spec.get("runtime_config"),
        env_vars=runtime_spec.get("environment_variables") or {},
        prefork=0,
    )
    runtime.prime()
    return runtime


async def run_primed(prime: dict[str, Any]) -> int:
    """A warm worker primed for an environment: its container starts at once, then the
    spec arrives (next stdin line) — or the end of stdin, and the container is removed."""
    ran = await _run_primed(prime)
    return 0 if ran is None else ran.code


async def _run_primed(prime: dict[str, Any]) -> Ran | None:
    from hud.eval.runtimes.docker import SESSION_ENV

    if prime.get("label"):
        os.environ[SESSION_ENV] = str(prime["label"])
    runtime = primed_runtime(prime.get("runtime") or {})
    loop = asyncio.get_running_loop()
    preload = loop.run_in_executor(None, _preload, str(prime.get("agent_type") or ""))
    line = await loop.run_in_executor(None, sys.stdin.readline)
    await preload
    spec = json.loads(line or "null")
    if not isinstance(spec, dict):  # not needed after all
        await runtime.aclose()
        return None
    _apply_environ(spec)
    if spec.get("runtime") != prime.get("runtime"):
        await runtime.aclose()
        return await _run(spec)
    try:
        return await _run(spec, runtime)
    finally:
        await runtime.aclose()  # a spec that could not run left the container unused


#: The SDK an agent type's model client imports on its first call.
SDKS = {"claude": "anthropic", "openai": "openai", "openai_compatible": "openai"}


def _preload(kind: str) -> None:
    """Import the agent's module and its provider SDK while the worker waits (a first model
    call would otherwise pay for it)."""
    import importlib

    try:
        from hud.agents.factory import PROVIDER_CLASSES

        if kind in PROVIDER_CLASSES:
            importlib.import_module(PROVIDER_CLASSES[kind][0])
        if kind in SDKS:
            importlib.import_module(SDKS[kind])
    except Exception:  # the rollout imports (and reports) it itself
        pass


def _apply_environ(spec: dict[str, Any]) -> None:
    environ = spec.pop("environ", None)
    if isinstance(environ, dict):  # the team's key and the platform's URLs, sent with the spec
        os.environ.update({str(k): str(v) for k, v in environ.items()})
        from hud.settings import reload

        reload()


@dataclass
class Ran:
    """How one rollout went: the process's exit status, and whether the process may serve
    another (the rollout completed, nothing cancelled or failed)."""

    code: int
    clean: bool = False


async def run(spec: dict[str, Any], primed: Any = None) -> int:
    return (await _run(spec, primed)).code


async def _run(spec: dict[str, Any], primed: Any = None) -> Ran:
    from hud.eval import Job, run_job
    from hud.eval.runtimes.docker import DockerRuntime
    from hud.platform.client.report import event_handler, reporter_from_settings
    from hud.types.task import Task

    trace_hex = str(spec["trace_id"]).replace("-", "")
    job_hex = str(spec["job_id"]).replace("-", "")
    reporter = reporter_from_settings()
    if reporter is None:
        print("no platform to report to (HUD_API_KEY / HUD_API_URL)", file=sys.stderr)
        return Ran(2)
    # one trace per process: its exit goes out as soon as it is known (the client waits on
    # it), not on the next half-second tick, nor after the container's removal
    reporter.flush_interval = 0.05
    metadata = dict(spec.get("metadata") or {})
    metadata["worker_pid"] = os.getpid()  # which worker process ran it (one serves many)
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
        runtime = primed or DockerRuntime(
            runtime_config=runtime_spec.get("runtime_config"),
            env_vars=runtime_spec.get("environment_variables") or {},
            prefork=0,
        )
    except Exception as exc:  # a spec that cannot run: an errored trace, not a crash
        renamed.trace_exit("", status="error", reward=0.0, error=f"{type(exc).__name__}: {exc}")
        reporter.close(timeout=30)
        return Ran(0)

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
    failed = False
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
        failed = True
        renamed.trace_exit("", status="error", reward=0.0, error=f"{type(exc).__name__}: {exc}")
    finally:
        await runtime.aclose()
        stats = reporter.close(timeout=30)
    code = 0 if not stats.dropped else 1
    clean = code == 0 and not failed and not stop.is_set() and renamed.status == "completed"
    return Ran(code, clean)


def serve() -> int:
    """Serve specs, one per stdin line, until stdin ends (or a rollout leaves the process
    unfit for another): the platform's reusable workers (`LocalExecutor`)."""
    global _protocol
    from hud.eval.runtimes.docker import remove_own

    _protocol = os.fdopen(os.dup(1), "w", buffering=1)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # prints of libraries cannot garble the protocol
    os.close(quiet)
    base = dict(os.environ)  # what the platform started it with: no key, no secret
    threading.Thread(target=_warm_up, name="hud-warm-up", daemon=True).start()
    first = True
    for served in range(1, SERVE_AT_MOST + 1):
        message = _read_message()
        if message is None:  # closed (unused, or the platform stopped)
            return 0
        if first and isinstance(message.get("prime"), dict):
            ran = asyncio.run(_run_primed(message["prime"]))
            if ran is None:
                return 0
        else:
            _apply_environ(message)
            ran = asyncio.run(_run(message))
        first = False
        left = remove_own()  # the rollout's containers are gone before it is called done
        _restore(base)
        reusable = ran.clean and not left and served < SERVE_AT_MOST
        _say(f"{DONE} {ran.code} {int(reusable)}")
        if not reusable:
            return ran.code
    return 0


def _read_message() -> dict[str, Any] | None:
    line = sys.stdin.readline()
    try:
        message = json.loads(line or "null")
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _restore(base: dict[str, str]) -> None:
    """The process environment back to ``base`` (the team's key and the platform's URLs
    gone), and the settings read from it forgotten."""
    from hud.settings import reload

    os.environ.clear()
    os.environ.update(base)
    reload()


def _warm_up() -> None:
    """While a fresh worker waits for (or starts) its first rollout: the Docker client
    (import, daemon ping) and the model SDK most agents use, so that rollout does not wait
    for them on its path (the SDK loads while its container boots). Nothing of this is
    secret."""
    from hud.eval.runtimes.docker import DockerError, docker_client

    try:
        docker_client()
    except DockerError:  # the rollout reports it
        pass
    _preload("openai_compatible")


def main(argv: list[str] | None = None) -> None:
    # Imported before the spec arrives: a worker started ahead of need (`LocalExecutor`'s warm
    # processes) has paid for them already.
    import hud.agents.factory
    import hud.eval.runner
    import hud.eval.runtimes.docker
    import hud.platform.client.report  # noqa: F401

    if "--serve" in (sys.argv[1:] if argv is None else argv):
        sys.exit(serve())
    # one JSON line: the spec; or a prime (`run_primed`) then, on the next line, the spec
    spec = json.loads(sys.stdin.readline() or "null")
    if isinstance(spec, dict) and isinstance(spec.get("prime"), dict):
        sys.exit(asyncio.run(run_primed(spec["prime"])))
    if not isinstance(spec, dict):  # closed unused (the platform stopped)
        sys.exit(0)
    _apply_environ(spec)
    sys.exit(asyncio.run(run(spec)))


if __name__ == "__main__":
    main()
