"""`hud eval`: run an agent over a task source, locally, with a job record (G22-G29, G39)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

#: Exit code when a quality gate (--fail-under / --fail-on-error) trips (G22).
EXIT_GATE = 3
#: Exit code after Ctrl-C.
EXIT_INTERRUPTED = 130
#: Exit code when every rollout errored (nothing was graded).
EXIT_ALL_ERRORED = 1

DEFAULT_MAX_STEPS = 10
FULL_MAX_STEPS = 100
DEFAULT_MAX_CONCURRENT = 30

PLATFORM_RUNTIMES = ("hud", "hosted")
CONTAINER_RUNTIMES = ("modal", "daytona")


_SECRET = re.compile(r"(api_?key|token|secret|password)", re.IGNORECASE)


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """Drop secret-looking values (``-c api_key=...``) before a config is written to disk."""
    return {
        k: v for k, v in config.items() if str(k).endswith("_env") or not _SECRET.search(str(k))
    }


@dataclass
class Plan:
    """Everything that decides what runs; saved in the job record for ``--resume``."""

    source: str
    source_label: str
    agent: str
    model: str | None = None
    agent_config: dict[str, Any] = field(default_factory=dict)
    max_steps: int = DEFAULT_MAX_STEPS
    group: int = 1
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    task_ids: str | None = None
    run_all: bool = False
    runtime: str = "local"
    rollout_timeout: float | None = None
    slugs: list[str] = field(default_factory=list)

    def to_config(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_label": self.source_label,
            "agent": self.agent,
            "model": self.model,
            "agent_config": redact(self.agent_config),
            "max_steps": self.max_steps,
            "group": self.group,
            "max_concurrent": self.max_concurrent,
            "task_ids": self.task_ids,
            "all": self.run_all,
            "runtime": self.runtime,
            "rollout_timeout": self.rollout_timeout,
            "slugs": self.slugs,
            "total": len(self.slugs) * self.group,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Plan:
        try:
            return cls(
                source=str(config["source"]),
                source_label=str(config.get("source_label") or config["source"]),
                agent=str(config["agent"]),
                model=config.get("model"),
                agent_config=dict(config.get("agent_config") or {}),
                max_steps=int(config.get("max_steps") or DEFAULT_MAX_STEPS),
                group=int(config.get("group") or 1),
                max_concurrent=int(config.get("max_concurrent") or DEFAULT_MAX_CONCURRENT),
                task_ids=config.get("task_ids"),
                run_all=bool(config.get("all")),
                runtime=str(config.get("runtime") or "local"),
                rollout_timeout=config.get("rollout_timeout"),
                slugs=[str(s) for s in config.get("slugs") or []],
            )
        except (KeyError, TypeError, ValueError) as exc:
            from hud.cli.errors import CLIError

            raise CLIError(f"the job record's config is unusable ({exc!r})") from None


def eval_command(
    source: str = typer.Argument(
        None,
        help="Tasks: a .py file, a directory, or .json/.jsonl beside its env "
        "(default: the only *.json/*.jsonl here, else tasks.py).",
    ),
    agent: str = typer.Argument(
        None,
        help="oracle, nop, replay, or a provider agent (claude, openai, gemini, "
        "openai_compatible, sonnet, opus, haiku, claude-*, gpt-*, gemini-*).",
    ),
    run_all: bool = typer.Option(False, "--all", help="Run every task (default: the first)."),
    full: bool = typer.Option(
        False, "--full", help="Run everything: --all plus --max-steps 100 unless given."
    ),
    model: str = typer.Option(None, "--model", "-m", help="Model for a provider agent."),
    config: list[str] = typer.Option(
        None, "--config", "-c", help="Agent setting key=value or agent.key=value (repeatable)."
    ),
    group: int = typer.Option(
        None, "--group", "--group-size", min=1, help="Rollouts per task (default 1)."
    ),
    max_concurrent: int = typer.Option(
        None, "--max-concurrent", min=1, help="Rollouts in flight at once (default 30)."
    ),
    max_steps: int = typer.Option(
        None, "--max-steps", min=1, help="Agent steps per rollout (default 10; 100 with --full)."
    ),
    task_ids: str = typer.Option(
        None, "--task-ids", help="Comma-separated slugs, template ids or 0-based indices."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="One line per finished rollout."),
    very_verbose: bool = typer.Option(False, "--very-verbose", "-vv", help="Debug logs."),
    runtime: str = typer.Option(
        None,
        "--runtime",
        help="local (a subprocess per rollout; containers for rows that ask for one), docker "
        "(a container per rollout) or tcp://host:port.",
    ),
    remote: bool = typer.Option(False, "--remote", help="Run on the HUD platform (not set up)."),
    gateway: bool = typer.Option(
        False, "--gateway", "-g", help="Route model calls via the HUD gateway (HUD_API_KEY)."
    ),
    auto_respond: bool = typer.Option(
        None,
        "--auto-respond/--no-auto-respond",
        help="Answer 'continue' when the model stops early with a question (on with --full).",
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Accepted for compatibility; hud eval never prompts."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
    fail_under: float = typer.Option(
        None, "--fail-under", help="Exit 3 when the mean reward (errors as 0) is below this."
    ),
    fail_on_error: bool = typer.Option(
        False, "--fail-on-error", help="Exit 3 when any rollout errored."
    ),
    resume: str = typer.Option(
        None, "--resume", help="Finish an interrupted job: run only its missing rollouts."
    ),
    rollout_timeout: float = typer.Option(
        None, "--rollout-timeout", help="Seconds one rollout may take in all (then it fails)."
    ),
    jobs_dir: Path = typer.Option(
        None, "--jobs-dir", help="Where job records are written (default: .hud/jobs)."
    ),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Harbor tasks: build their images again, without the cache."
    ),
    env_secrets: bool = typer.Option(
        False,
        "--env-secrets",
        help="A platform taskset run here (--runtime docker): fetch its environments' "
        "secrets from the platform and pass them to the containers.",
    ),
) -> None:
    """Run an agent on tasks and report rewards; every run is saved under .hud/jobs."""
    import contextlib
    import os

    from hud.cli.output import err_console
    from hud.eval.records import DEFAULT_JOBS_DIR

    jobs_dir = jobs_dir or DEFAULT_JOBS_DIR
    if rebuild:
        os.environ["HUD_HARBOR_REBUILD"] = "1"  # read by HarborRuntime (hud.integrations.harbor)

    project = None if resume else _project_config()
    if project is not None:
        ev = project.eval
        verbose = verbose or bool(ev.get("verbose"))
        very_verbose = very_verbose or bool(ev.get("very_verbose"))
        runtime = runtime or ev.get("runtime")
        remote = remote or bool(ev.get("remote"))
        gateway = gateway or bool(ev.get("gateway"))
    _setup_logging(very_verbose)
    _check_placement_flags(runtime, remote, gateway)
    if rollout_timeout is not None and rollout_timeout <= 0:
        from hud.cli.errors import CLIError

        raise CLIError(f"--rollout-timeout must be > 0, got {rollout_timeout:g}")
    out_console = err_console() if as_json else _stdout_console()
    json_out = sys.stdout
    # With --json, stdout carries only the JSON document: stray prints go to stderr.
    redirect = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with redirect:
        if resume:
            given = {
                "SOURCE": source,
                "AGENT": agent,
                "--model": model,
                "--config": config,
                "--group": group,
                "--max-steps": max_steps,
                "--task-ids": task_ids,
                "--runtime": runtime,
                "--rollout-timeout": rollout_timeout,
                "--all": run_all or None,
                "--full": full or None,
            }
            ignored = [name for name, value in given.items() if value]
            record, plan, taskset, agent_obj = _prepare_resume(
                resume, jobs_dir, ignored, max_concurrent, env_secrets=env_secrets
            )
        else:
            ev = project.eval if project is not None else {}
            full = full or bool(ev.get("full"))
            plan, taskset, agent_obj = _prepare_new(
                source=source,
                agent=agent,
                run_all=run_all or full or bool(ev.get("all")),
                full=full,
                model=model,
                config=config or [],
                group=group or ev.get("group_size") or 1,
                max_concurrent=max_concurrent or ev.get("max_concurrent") or DEFAULT_MAX_CONCURRENT,
                max_steps=max_steps,
                task_ids=task_ids,
                runtime=runtime or ("hosted" if remote else "local"),
                rollout_timeout=rollout_timeout or ev.get("rollout_timeout"),
                hosted_default=not runtime and not remote,
                jobs_dir=jobs_dir,
                auto_respond=auto_respond,
                project=project,
                gateway=gateway,
                env_secrets=env_secrets,
            )
            record = None  # run_job creates it in jobs_dir once the rows check out
        code = _run_and_report(
            plan,
            taskset,
            agent_obj,
            record,
            jobs_dir=jobs_dir,
            verbose=verbose or very_verbose,
            json_out=json_out if as_json else None,
            out_console=out_console,
            fail_under=fail_under,
            fail_on_error=fail_on_error,
        )
    if code:
        raise typer.Exit(code)


# -- preparing -------------------------------------------------------------------------------
def _project_config() -> Any:
    """`.hud_eval.toml` / ``[tool.hud]`` of the working directory, if any (notes on stderr)."""
    from hud.cli.errors import CLIError
    from hud.cli.output import err_console
    from hud.eval.project_config import (
        ProjectConfigError,
        find_project_config,
        load_project_config,
    )

    path = find_project_config()
    if path is None:
        return None
    try:
        project = load_project_config(path)
    except ProjectConfigError as exc:
        raise CLIError(str(exc), hint="fix the file, or run from another directory") from None
    from rich.markup import escape

    console = err_console()
    for warning in project.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    console.print(f"[dim]using defaults from {path.name}[/]", highlight=False)
    return project


def _stdout_console() -> Any:
    from hud.cli.output import console

    return console()


def _setup_logging(debug: bool) -> None:
    import logging

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if debug:
        logging.getLogger("hud").setLevel(logging.DEBUG)


def _check_placement_flags(runtime: str | None, remote: bool, gateway: bool) -> None:
    from hud.cli.errors import CLIError

    if remote and runtime:
        raise CLIError("--runtime and --remote cannot be combined")
    if remote:
        from hud.settings import get_setting

        if get_setting("HUD_API_KEY"):
            return
        raise CLIError(
            "--remote needs the HUD platform, and no platform is configured "
            "(HUD_API_KEY / HUD_API_URL)",
            hint="drop --remote to run locally, or point --runtime at a server: tcp://host:port",
        )
    if gateway:
        from hud.settings import get_setting

        if not get_setting("HUD_API_KEY"):
            raise CLIError(
                "--gateway needs a HUD platform key (HUD_API_KEY; HUD_GATEWAY_URL for a "
                "self-hosted platform)",
                hint="run `hud login`, or drop --gateway so agents call their provider directly",
            )
    if runtime is None or runtime in ("local", "docker") or runtime.startswith("tcp://"):
        return
    if runtime in PLATFORM_RUNTIMES:
        from hud.settings import get_setting

        if get_setting("HUD_API_KEY"):
            return
        raise CLIError(
            f"--runtime {runtime} needs the HUD platform, and no platform is configured "
            "(HUD_API_KEY / HUD_RUNTIME_URL)",
            hint="use --runtime local or --runtime tcp://host:port",
        )
    if runtime in CONTAINER_RUNTIMES:
        raise CLIError(
            f"--runtime {runtime} arrives with container support (DockerRuntime); "
            "it is not available yet",
            hint="use --runtime local, --runtime docker or --runtime tcp://host:port",
        )
    raise CLIError(
        f"unknown --runtime {runtime!r}", hint="use --runtime local or --runtime tcp://host:port"
    )


def _split_positionals(source: str | None, agent: str | None) -> tuple[str | None, str | None]:
    """``hud eval oracle`` (one word, not a path): the word is the agent."""
    if agent is None and source is not None and not Path(source).exists():
        from hud.agents.factory import UnknownAgentError, resolve_agent

        try:
            resolve_agent(source)
        except UnknownAgentError:
            return source, agent
        return None, source
    return source, agent


def auto_source(cwd: Path | None = None) -> Path:
    """No SOURCE: the only *.json/*.jsonl here (no dotfiles), else tasks.py."""
    from hud.cli.errors import CLIError
    from hud.eval.taskset import ROW_FILE_SUFFIXES

    cwd = cwd or Path.cwd()
    files = sorted(
        p
        for p in cwd.iterdir()
        if p.is_file() and p.suffix in ROW_FILE_SUFFIXES and not p.name.startswith(".")
    )
    if len(files) == 1:
        return Path(files[0].name)
    if (cwd / "tasks.py").is_file():
        return Path("tasks.py")
    if files:
        listed = ", ".join(p.name for p in files[:6])
        raise CLIError(
            f"several task files here ({listed}); pass the one to run",
            hint="hud eval <tasks file> <agent>",
        )
    raise CLIError(
        "no task source given, and no tasks.py or single *.json/*.jsonl file here",
        hint="hud eval <tasks.py | directory | tasks.json> <agent>",
    )


def _load(source: str, *, env_secrets: bool = False) -> Any:
    """`load_source` with one-line errors."""
    from hud.cli.errors import CLIError
    from hud.environment.loader import LoadError
    from hud.eval.sources import TASK_FILE_SUFFIXES, load_source

    path = Path(source)
    if not path.exists():
        looks_like_path = path.suffix in TASK_FILE_SUFFIXES or "/" in source or "\\" in source
        if looks_like_path:
            raise CLIError(f"task source {source!r} does not exist")
        from hud.settings import settings

        api_key = settings().api_key
        if api_key:  # a platform taskset, run here (e.g. --runtime docker)
            from hud.platform.client.tasksets import PlatformTasksetError, load_platform_taskset

            try:
                return load_platform_taskset(
                    source, settings().api_url, api_key, env_secrets=env_secrets
                )
            except PlatformTasksetError as exc:
                raise CLIError(str(exc)) from None
        raise CLIError(
            f"{source!r} is not a file or directory here; platform taskset names need the "
            "HUD platform (HUD_API_KEY), which is not configured",
            hint="pass a tasks file: a .py file, a directory, or a .json/.jsonl file",
        )
    try:
        loaded = load_source(path)
    except LoadError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(f"cannot load tasks from {source}: {exc}") from None
    if len(loaded.taskset) == 0:
        raise CLIError(
            f"No runnable Tasks found in {source}. Define a hud.Environment with "
            "@env.template and expose Tasks (for example, t = my_task(arg=...)).",
        )
    return loaded


def _build_agent(plan: Plan, jobs_dir: Path) -> Any:
    from hud.agents.factory import create_agent
    from hud.cli.errors import CLIError

    config = dict(plan.agent_config)
    if plan.agent.lower() == "replay":  # where replay looks up trace ids
        from hud.settings import settings

        config.setdefault("jobs_dir", str(jobs_dir))
        local_dir = settings().telemetry_local_dir
        if local_dir is not None:
            config.setdefault("local_dir", str(local_dir))
    try:
        return create_agent(plan.agent, model=plan.model, config=config, max_steps=plan.max_steps)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _prepare_new(
    *,
    source: str | None,
    agent: str | None,
    run_all: bool,
    full: bool,
    model: str | None,
    config: list[str],
    group: int,
    max_concurrent: int,
    max_steps: int | None,
    task_ids: str | None,
    runtime: str,
    rollout_timeout: float | None,
    jobs_dir: Path,
    auto_respond: bool | None = None,
    project: Any = None,
    gateway: bool = False,
    hosted_default: bool = False,
    env_secrets: bool = False,
) -> tuple[Plan, Any, Any]:
    from hud.agents.factory import UnknownAgentError, agent_names, parse_config, resolve_agent
    from hud.cli.errors import CLIError

    source, agent = _split_positionals(source, agent)
    ev: dict[str, Any] = project.eval if project is not None else {}
    if source is None and ev.get("source"):
        source = str(ev["source"])
    agent = agent or ev.get("agent")
    if task_ids is None and project is not None:
        task_ids = project.task_ids
    if not agent:
        hint = f"hud eval [SOURCE] AGENT, AGENT one of: {', '.join(agent_names())}"
        if project is None:
            hint += " (or agent = ... under [eval] in .hud_eval.toml)"
        raise CLIError("no agent given", hint=hint)
    try:
        named = resolve_agent(agent)  # its type and name pick the file's agent sections
        from_file = project.agent_settings([named.type, named.name]) if project else {}
        file_model = from_file.pop("model", None)
        if model is None:
            model = ev.get("model") or file_model
        spec = resolve_agent(agent, model)
        from_cli = parse_config(config, spec)
    except UnknownAgentError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(str(exc), hint="--config key=value (or agent.key=value)") from None
    agent_config = {**from_file, **from_cli}
    if max_steps is None:
        configured = from_cli.get("max_steps") or ev.get("max_steps") or from_file.get("max_steps")
        max_steps = int(configured) if configured else (FULL_MAX_STEPS if full else None)
    agent_config.pop("max_steps", None)
    if auto_respond is None and "auto_respond" not in agent_config:
        auto_respond = ev.get("auto_respond", True if full else None)
    if auto_respond is not None:
        agent_config["auto_respond"] = auto_respond
    if gateway:
        agent_config["gateway"] = True
    plan = Plan(
        source="",
        source_label="",
        agent=agent,
        model=model,
        agent_config=agent_config,
        max_steps=max_steps or DEFAULT_MAX_STEPS,
        group=group,
        max_concurrent=max_concurrent,
        task_ids=task_ids,
        run_all=run_all,
        runtime=runtime,
        rollout_timeout=rollout_timeout,
    )
    agent_obj = _build_agent(plan, jobs_dir)
    label = source if source is not None else str(auto_source())
    loaded = _load(label, env_secrets=env_secrets)
    plan.source = str(loaded.path)
    plan.source_label = label
    if hosted_default and _is_platform_taskset(loaded):
        plan.runtime = "hosted"  # a platform taskset runs on the platform unless --runtime
    taskset = _select(loaded.taskset, plan)
    plan.slugs = taskset.slugs
    chosen = _Loaded(taskset, loaded.env_target, loaded.placement)
    _check_rows(chosen, plan)
    return plan, chosen, agent_obj


def _is_platform_taskset(loaded: Any) -> bool:
    from hud.platform.client.tasksets import PlatformPlacement

    return isinstance(getattr(loaded, "placement", None), PlatformPlacement)


@dataclass
class _Loaded:
    taskset: Any
    env_target: Path
    #: The source's own provider (Harbor task directories), if any.
    placement: Any = None


def _select(taskset: Any, plan: Plan) -> Any:
    from hud.cli.errors import CLIError
    from hud.eval.taskset import TaskNotFoundError

    if plan.task_ids is not None:
        try:
            return taskset.select(plan.task_ids)
        except (TaskNotFoundError, ValueError) as exc:
            raise CLIError(f"--task-ids: {exc}") from None
    if plan.run_all or len(taskset) <= 1:
        return taskset
    _note(f"Running only 1 of {len(taskset)} tasks (the first). Add --all to run every task.")
    return taskset.filter([taskset.slugs[0]])


def _note(text: str) -> None:
    """A ``⚠`` line on stderr."""
    from rich.markup import escape

    from hud.cli.output import err_console

    err_console().print(f"[yellow]⚠ {escape(text)}[/]")


def _check_rows(loaded: _Loaded, plan: Plan) -> None:
    """What only the CLI knows is wrong before anything runs (`run_job` checks the rest)."""
    from hud.cli.errors import CLIError

    if plan.runtime == "local" and loaded.placement is None and not loaded.env_target.exists():
        raise CLIError(f"environment source {loaded.env_target} does not exist")


def _prepare_resume(
    job_id: str,
    jobs_dir: Path,
    ignored: list[str],
    max_concurrent: int | None,
    *,
    env_secrets: bool = False,
) -> tuple[Any, Plan, _Loaded, Any]:
    from hud.cli.errors import CLIError
    from hud.eval.records import JobRecord

    try:
        record = JobRecord.open(job_id, base_dir=jobs_dir)
    except LookupError as exc:
        raise CLIError(str(exc), hint=f"job records live in {jobs_dir} (see --jobs-dir)") from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if ignored:
        _note(f"--resume reruns the job's saved settings; ignoring {', '.join(ignored)}")
    plan = Plan.from_config(record.config)
    if max_concurrent:
        plan.max_concurrent = max_concurrent
    agent_obj = _build_agent(plan, jobs_dir)
    loaded = _load(plan.source, env_secrets=env_secrets)
    taskset = loaded.taskset
    if plan.slugs:
        missing = [s for s in plan.slugs if s not in taskset]
        if missing:
            _note(
                f"{len(missing)} task(s) of the job are gone from {plan.source_label}: "
                f"{', '.join(missing[:5])}"
            )
        taskset = taskset.filter(plan.slugs)
    chosen = _Loaded(taskset, loaded.env_target, loaded.placement)
    _check_rows(chosen, plan)
    return record, plan, chosen, agent_obj


# -- running: hud.eval.run_job, events to the display ------------------------------------------
def _run_and_report(
    plan: Plan,
    loaded: _Loaded,
    agent: Any,
    record: Any,
    *,
    jobs_dir: Path,
    verbose: bool,
    json_out: Any,
    out_console: Any,
    fail_under: float | None,
    fail_on_error: bool,
) -> int:
    import asyncio
    import gc
    import json

    from hud.cli import eval_display as display
    from hud.cli.output import err_console

    # A job makes and drops many small containers per rollout (steps, events, records,
    # reports). What is alive now lives for the whole job: out of the collector's sight; and
    # a young generation of 10,000 (not 700) lets the rest die by reference counting before a
    # collection promotes it: fewer full collections walking a heap that grows with the job.
    # Both are undone once the job is over (a caller running this in-process keeps its own).
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    taskset = loaded.taskset
    view = display.EvalView(
        err_console(), order={slug: i for i, slug in enumerate(taskset.slugs)}, verbose=verbose
    )
    from hud.cli.errors import CLIError

    try:
        result = asyncio.run(_execute(plan, loaded, agent, record, jobs_dir=jobs_dir, view=view))
    except ValueError as exc:  # rows that cannot run, raised before anything ran
        raise CLIError(str(exc)) from None
    except OSError as exc:
        if record is None and exc.filename and str(jobs_dir) in str(exc.filename):
            raise CLIError(f"cannot write the job record in {jobs_dir}: {exc}") from None
        raise
    finally:
        view.close()
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    for problem in result.write_errors[:3]:
        _note(f"could not save a rollout to the job record: {problem}")
    rows = display.display_rows(result, view)
    summary = result.summary.model_dump()
    display.print_results(
        out_console, rows, summary, title=f"'{plan.source_label}' Results", job_id=result.job_id
    )
    if json_out is not None:
        doc = display.json_doc(plan, result.record, rows, summary, result.status)
        json_out.write(json.dumps(doc, indent=2, default=str) + "\n")
        json_out.flush()
    if result.interrupted:
        err_console().print(
            f"[yellow]Interrupted: {len(result.new_rows)} of {result.planned} rollout(s) "
            f"finished.[/] Resume with: hud eval --resume {result.job_id}"
        )
        return EXIT_INTERRUPTED
    if result.summary.all_errored:
        _all_errored(result)
        return EXIT_ALL_ERRORED
    return _gate(summary, fail_under, fail_on_error)


def _placement(plan: Plan, loaded: _Loaded) -> Any:
    """``--runtime`` as a `run_job` placement: the server at a ``tcp://`` URL, the source's own
    provider (Harbor tasks), ``docker``, or ``auto`` (``local``)."""
    if plan.runtime.startswith("tcp://"):
        return plan.runtime
    if plan.runtime == "hud":  # a platform runtime session per rollout
        from hud.platform.client.runtime import HUDRuntime

        return HUDRuntime()
    if plan.runtime == "hosted":  # whole rollouts run by the platform's workers
        from hud.agents.factory import resolve_agent
        from hud.platform.client.hosted import HostedRuntime

        return HostedRuntime(resolve_agent(plan.agent, plan.model).type)
    if loaded.placement is not None:
        return loaded.placement
    return "docker" if plan.runtime == "docker" else "auto"


async def _execute(
    plan: Plan, loaded: _Loaded, agent: Any, record: Any, *, jobs_dir: Path, view: Any
) -> Any:
    """`run_job` with signal handling: the first Ctrl-C (or SIGTERM) stops the job (rollouts in
    flight are cancelled, everything graded is already recorded); a second one exits at once."""
    import asyncio
    import contextlib
    import os
    import signal

    from hud.cli.output import err_console
    from hud.eval.runner import run_job
    from hud.platform.client.report import tee

    job = _job(plan, loaded, record)
    reporter, reporting = _platform_reporter(job, agent, plan)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        if stop.is_set():
            err_console().print("[red]Interrupted again: exiting now.[/]")
            os._exit(EXIT_INTERRUPTED)
        stop.set()
        view.close()
        err_console().print("[yellow]Stopping: cancelling rollouts in flight...[/]")

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, interrupt)
            installed.append(signum)
    try:
        return await run_job(
            loaded.taskset,
            agent,
            job=job,
            placement=_placement(plan, loaded),
            group=plan.group,
            max_concurrent=plan.max_concurrent,
            rollout_timeout=plan.rollout_timeout,
            record=jobs_dir if record is None else record,
            resume=record,
            config=plan.to_config(),
            env_target=loaded.env_target,
            on_event=tee(view, reporting),
            stop=stop,
        )
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        if reporter is not None:
            await _close_reporter(reporter, err_console())


def _job(plan: Plan, loaded: _Loaded, record: Any) -> Any:
    """The `Job` of this invocation: a resumed record's, else a new one (named as `run_job`
    names it)."""
    import uuid

    from hud.eval.job import Job
    from hud.eval.runner import job_name

    taskset = loaded.taskset
    if record is not None:
        return Job(id=record.job_id, name=record.name or "job", group=plan.group)
    return Job(
        id=uuid.uuid4().hex,
        name=job_name(taskset.name, list(taskset), plan.group),
        group=plan.group,
        taskset_id=taskset.taskset_id,
    )


def _platform_reporter(job: Any, agent: Any, plan: Any) -> tuple[Any, Any]:
    """When a key is set (spec §5): the background reporter and its ``on_event`` handler."""
    from hud.platform.client.report import event_handler, reporter_from_settings

    reporter = reporter_from_settings()
    if reporter is None:
        return None, None
    model = getattr(agent, "model", None) or getattr(plan, "model", None)
    handler = event_handler(
        reporter, model=str(model) if model else None, taskset_id=job.taskset_id
    )
    if plan.runtime == "hosted":  # the platform reports hosted rollouts' traces itself
        report_all = handler

        def handler(event: Any) -> None:
            if getattr(event, "type", None) == "job_started":
                report_all(event)

    return reporter, handler


async def _close_reporter(reporter: Any, ecn: Any) -> None:
    """Flush what is left to report (bounded); a platform that is down costs a warning only."""
    import asyncio

    stats = await asyncio.to_thread(reporter.close, 15.0)
    if stats.dropped or stats.pending:
        lost = stats.dropped + stats.pending
        ecn.print(f"[yellow]Warning:[/] {lost} report(s) did not reach the platform")


def _all_errored(result: Any) -> None:
    from rich.markup import escape

    from hud.cli.output import err_console

    first = next((row.error for row in result.rows if row.error), None) or "no grade"
    count = result.summary.run_count
    what = "the rollout" if count == 1 else f"all {count} rollouts"
    err_console().print(
        f"[red]error:[/] {what} errored, nothing was graded: {escape(first)}", highlight=False
    )


def _gate(summary: dict[str, Any], fail_under: float | None, fail_on_error: bool) -> int:
    from hud.cli.output import err_console

    failed = []
    if fail_under is not None and summary["mean_reward"] < fail_under:
        failed.append(
            f"mean reward {summary['mean_reward']:.3f} is below --fail-under {fail_under:g}"
        )
    if fail_on_error and summary["error_count"]:
        failed.append(f"{summary['error_count']} rollout(s) errored (--fail-on-error)")
    if not failed:
        return 0
    err_console().print(f"[red]Quality gate failed:[/] {'; '.join(failed)}")
    return EXIT_GATE
