"""`export(source, out_dir)`: HUD tasks -> Harbor task folders that Harbor itself runs.

Per task ``<out_dir>/<slug>/``:

* ``instruction.md``: the task's prompt (setup runs once here for it, and again in the
  container, so it must be deterministic) and a footer asking for the answer in ``answer_file``;
* ``task.toml``: ``[metadata] hud_task / hud_args``, agent and verifier timeouts, and a
  healthcheck on the control port (G38: providers that ignore ENTRYPOINT fail loudly there);
* ``environment/``: the env source directory, its ``Dockerfile.hud`` (or ``Dockerfile``) with an
  ENTRYPOINT that serves the env on ``127.0.0.1:8765`` and starts the task (parked until
  graded), and a wheel of this ``hud`` package so the image needs no published release;
* ``tests/test.sh``: ``hud task grade`` with the answer file -> ``/logs/verifier/reward.txt``
  (removed on failure, with the cause on stderr);
* ``solution/solve.sh`` when the template declares a reference solution that can be computed
  without the container (a literal, or a callable evaluated here against a local run).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

CONTROL_PORT = 8765
_IGNORED = {".git", ".venv", "__pycache__", ".hud", ".pytest_cache", ".ruff_cache", "node_modules"}


def _toml_str(value: str) -> str:
    return json.dumps(value)


def _workdir(dockerfile: str) -> str:
    workdir = "/"
    for line in dockerfile.splitlines():
        match = re.match(r"\s*WORKDIR\s+(\S+)", line, re.IGNORECASE)
        if match:
            path = match.group(1)
            workdir = path if path.startswith("/") else f"{workdir.rstrip('/')}/{path}"
    return workdir


def _dockerfile(text: str, wheel: str) -> str:
    """The env's Dockerfile installing ``wheel`` (this package) and wrapped in our ENTRYPOINT."""
    if re.search(r"^\s*ARG\s+HUD_SPEC\b", text, re.MULTILINE):
        text = re.sub(
            r"^(\s*ARG\s+HUD_SPEC)\b.*$", rf"\1=./{wheel}", text, count=1, flags=re.MULTILINE
        )
        install = ""
    else:
        install = (
            f"COPY {wheel} /tmp/{wheel}\n"
            f"RUN (pip install /tmp/{wheel} || python3 -m pip install /tmp/{wheel}) "
            f"&& rm -f /tmp/{wheel}\n"
        )
    return (
        text.rstrip()
        + "\n\n# Added by hud.integrations.harbor.export: serve the env and start the task.\n"
        + install
        + "COPY hud_entrypoint.sh /hud_entrypoint.sh\n"
        + "RUN chmod 755 /hud_entrypoint.sh\n"
        + 'ENTRYPOINT ["/hud_entrypoint.sh"]\n'
        + 'CMD ["sleep", "infinity"]\n'
    )


ENTRYPOINT = """#!/bin/sh
# Serve the HUD environment on 127.0.0.1:{port}, start the task (it stays parked until
# tests/test.sh grades it), then run the container's command.
cd {workdir}
hud serve {target} --host 127.0.0.1 --port {port} >/tmp/hud-serve.log 2>&1 &
hud task start {task_id} --args {args} --url tcp://127.0.0.1:{port} \\
  >/tmp/hud-task-start.log 2>&1 &
exec "$@"
"""

TEST_SH = """#!/bin/sh
# Grade the parked HUD task with the agent's answer; the reward goes to reward.txt.
mkdir -p /logs/verifier
rm -f /logs/verifier/reward.txt
cd {workdir}
if ! python3 -c "import socket; socket.create_connection(('127.0.0.1', {port}), 3)" \\
    2>/dev/null; then
  echo "hud: no HUD server on 127.0.0.1:{port}: the image ENTRYPOINT (/hud_entrypoint.sh)" \\
    "did not run or the server died; see /tmp/hud-serve.log" >&2
  cat /tmp/hud-serve.log >&2 2>/dev/null
  exit 1
fi
answer={answer_file}
if [ ! -f "$answer" ]; then
  echo "hud: no answer file $answer; grading an empty answer" >&2
  answer=/dev/null
fi
if reward=$(hud task grade {task_id} --args {args} --answer-file "$answer" \\
    --url tcp://127.0.0.1:{port} 2>/tmp/hud-grade.err); then
  echo "$reward" | tail -n 1 > /logs/verifier/reward.txt
  echo "reward: $(cat /logs/verifier/reward.txt)"
else
  echo "hud: grading failed:" >&2
  cat /tmp/hud-grade.err >&2
  rm -f /logs/verifier/reward.txt
  exit 1
fi
"""

SOLVE_SH = """#!/bin/sh
# The task's reference answer, written where the tests read it.
mkdir -p {answer_dir}
printf '%s' {answer} > {answer_file}
"""


async def export(
    source: str | Path,
    out_dir: str | Path,
    *,
    answer_file: str = "/workspace/answer.txt",
    timeout_sec: float = 600,
) -> list[Path]:
    """Write one Harbor task folder per task of ``source``; returns their paths."""
    from hud.eval.runtimes.wheel import build_wheel
    from hud.eval.sources import load_source

    loaded = load_source(source)
    target = loaded.env_target
    env_dir = target if target.is_dir() else target.parent
    dockerfile_path = next(
        (env_dir / n for n in ("Dockerfile.hud", "Dockerfile") if (env_dir / n).is_file()), None
    )
    if dockerfile_path is None:
        raise FileNotFoundError(f"no Dockerfile.hud or Dockerfile beside {target}")
    dockerfile_text = dockerfile_path.read_text(encoding="utf-8")
    workdir = _workdir(dockerfile_text)
    served = "." if target.is_dir() else target.name
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for task in loaded.taskset:
        prompt, answer = await _prompt_and_answer(task, target)
        folder = out / task.slug
        if folder.exists():
            shutil.rmtree(folder)
        env_out = folder / "environment"
        shutil.copytree(
            env_dir, env_out, ignore=lambda _d, names: [n for n in names if n in _IGNORED]
        )
        wheel = build_wheel(env_out)
        (env_out / "Dockerfile").write_text(_dockerfile(dockerfile_text, wheel.name))
        if dockerfile_path.name != "Dockerfile":
            (env_out / dockerfile_path.name).unlink(missing_ok=True)
        args = shlex.quote(json.dumps(task.args, sort_keys=True))
        entry = env_out / "hud_entrypoint.sh"
        entry.write_text(
            ENTRYPOINT.format(
                port=CONTROL_PORT,
                workdir=shlex.quote(workdir),
                target=shlex.quote(served),
                task_id=shlex.quote(task.id),
                args=args,
            )
        )
        entry.chmod(0o755)
        text = prompt if isinstance(prompt, str) else json.dumps(prompt, indent=2)
        (folder / "instruction.md").write_text(
            f"{text.rstrip()}\n\n---\nWhen you are done, write your final answer (only the "
            f"answer) to `{answer_file}`.\n"
        )
        (folder / "task.toml").write_text(_task_toml(task, timeout_sec))
        tests = folder / "tests"
        tests.mkdir()
        test_sh = tests / "test.sh"
        test_sh.write_text(
            TEST_SH.format(
                port=CONTROL_PORT,
                workdir=shlex.quote(workdir),
                answer_file=shlex.quote(answer_file),
                task_id=shlex.quote(task.id),
                args=args,
            )
        )
        test_sh.chmod(0o755)
        if answer is not None:
            solution = folder / "solution"
            solution.mkdir()
            solve = solution / "solve.sh"
            solve.write_text(
                SOLVE_SH.format(
                    answer_dir=shlex.quote(str(Path(answer_file).parent)),
                    answer=shlex.quote(answer),
                    answer_file=shlex.quote(answer_file),
                )
            )
            solve.chmod(0o755)
        written.append(folder)
    return written


def _task_toml(task: Any, timeout_sec: float) -> str:
    lines = [
        'version = "1.0"',
        f"name = {_toml_str(task.slug)}",
        "",
        "[metadata]",
        f"hud_task = {_toml_str(task.id)}",
        f"hud_args = {_toml_str(json.dumps(task.args, sort_keys=True))}",
        f"hud_env = {_toml_str(task.env)}",
        "",
        "[agent]",
        f"timeout_sec = {float(timeout_sec)}",
        "",
        "[verifier]",
        f"timeout_sec = {float(timeout_sec)}",
        "",
        "[environment]",
        f"build_timeout_sec = {float(timeout_sec)}",
        "",
        "# G38: the HUD server must be up before the agent starts (it is started by the image",
        "# ENTRYPOINT; providers that skip ENTRYPOINT fail here with a clear cause).",
        "[environment.healthcheck]",
        "command = "
        + _toml_str(
            f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {CONTROL_PORT})"
            ', 2)"'
        ),
        "interval_sec = 1.0",
        "timeout_sec = 10.0",
        "start_period_sec = 60.0",
        "start_interval_sec = 0.5",
        "retries = 3",
        "",
    ]
    return "\n".join(lines)


async def _prompt_and_answer(task: Any, target: Path) -> tuple[Any, str | None]:
    """Start the task locally for its prompt and, when possible, its reference answer."""
    from hud.agents.offline import NoSolutionError, solve
    from hud.clients import connect
    from hud.eval.run import Run
    from hud.eval.runtimes.local import LocalRuntime

    runtime = LocalRuntime(target, env=task.env)
    async with runtime(task) as rt, connect(rt) as client:
        frame = await client.start(task.id, task.args)
        prompt = frame.get("prompt")
        answer: str | None = None
        run = Run(client, task.id, task.args, task=task)
        try:
            value = await solve(run)
            answer = value if isinstance(value, str) else str(value)
        except (NoSolutionError, Exception):
            answer = None
        finally:
            try:
                await client.cancel()
            except Exception:
                pass
    return prompt, answer
