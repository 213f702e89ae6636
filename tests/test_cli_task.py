"""`hud task list|start|grade` as subprocesses (HOME = a temp dir), in a `hud init demo` project."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_user_error

STRAWBERRY = "count-4376680e"  # count(sentence="Strawberry world", letter="r") -> 4
BANANA = "count-e8d5ddbb"  # count(sentence="banana", letter="a") -> 3
STRAWBERRY_PROMPT = "How many times does 'r' appear in: 'Strawberry world'?"
BANANA_PROMPT = "How many times does 'a' appear in: 'banana'?"


# -- helpers ----------------------------------------------------------------------------------


def assert_grades_one(
    run_hud: Callable[..., Any], task: str, answer: str, url: str, cwd: Path, home: Any = None
) -> None:
    """``hud task grade TASK --answer ANSWER --url URL`` prints ``1.0``."""
    proc = run_hud("task", "grade", task, "--answer", answer, "--url", url, cwd=cwd, home=home)
    assert (proc.returncode, proc.stdout) == (0, "1.0\n"), proc.stderr


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) != 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def store(home: Path) -> list[dict[str, Any]]:
    path = home / ".hud" / "task_sessions.json"
    return json.loads(path.read_text()) if path.exists() else []


@pytest.fixture
def spawned(hud_home: Path) -> Iterator[list[int]]:
    """Pids of background servers seen in the store; any still alive are killed at teardown."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def remember_pids(home: Path, pids: list[int]) -> list[int]:
    found = [r["pid"] for r in store(home) if r.get("pid")]
    pids.extend(p for p in found if p not in pids)
    return found


def no_source_args() -> list[str]:
    """Nothing when 8765 is free (so TASK comes from the source); else ``--source .``."""
    return [] if port_free(8765) else ["--source", "."]


@pytest.fixture
def served(demo_project: Path, hud_serve: Callable[..., Any]) -> Any:
    return hud_serve("-p", "0", cwd=demo_project)


# -- list -------------------------------------------------------------------------------------


def test_list(run_hud: Callable[..., Any], demo_project: Path) -> None:
    proc = run_hud("task", "list", cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f'{STRAWBERRY}\tcount {{"sentence": "Strawberry world", "letter": "r"}}',
        f'{BANANA}\tcount {{"sentence": "banana", "letter": "a"}}',
    ]


def test_list_json_quiet_and_source(
    run_hud: Callable[..., Any], demo_project: Path, tmp_path: Path
) -> None:
    proc = run_hud("task", "list", "--json", cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [
        {
            "slug": STRAWBERRY,
            "id": "count",
            "args": {"sentence": "Strawberry world", "letter": "r"},
        },
        {"slug": BANANA, "id": "count", "args": {"sentence": "banana", "letter": "a"}},
    ]
    proc = run_hud("task", "list", "-q", cwd=demo_project)
    assert proc.stdout.splitlines() == [STRAWBERRY, BANANA]
    # --source tasks.py from elsewhere (G25)
    for source in (str(demo_project / "tasks.py"), str(demo_project)):
        proc = run_hud("task", "list", "-q", "--source", source, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [STRAWBERRY, BANANA]


def test_list_verbose_shows_template_defaults(run_hud: Callable[..., Any], tmp_path: Path) -> None:
    project = tmp_path / "defaults"
    project.mkdir()
    (project / "env.py").write_text(
        "from hud import Environment\n\n"
        "env = Environment(name='defaults')\n\n\n"
        "@env.template\n"
        "async def greet(name: str, punct: str = '!'):\n"
        "    answer = yield f'greet {name}{punct}'\n"
        "    yield 1.0\n"
    )
    (project / "tasks.py").write_text("from env import greet\n\ntasks = [greet(name='bo')]\n")
    plain = run_hud("task", "list", cwd=project)
    verbose = run_hud("task", "list", "-v", cwd=project)
    assert plain.returncode == 0 and verbose.returncode == 0, (plain.stderr, verbose.stderr)
    slug, rest = plain.stdout.strip().split("\t")
    assert rest == 'greet {"name": "bo"}'
    vslug, vrest = verbose.stdout.strip().split("\t")
    assert vslug == slug, "defaults never change the slug (G14)"
    assert vrest == 'greet {"name": "bo", "punct": "!"}'


# -- split flow from source (spawned background server) -------------------------------------


def test_split_flow_from_source(
    run_hud: Callable[..., Any], demo_project: Path, hud_home: Path, spawned: list[int]
) -> None:
    extra = no_source_args()
    proc = run_hud("task", "start", STRAWBERRY, *extra, cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == STRAWBERRY_PROMPT + "\n"
    assert "grade" in proc.stderr, "a spawned start says how to grade"
    (pid,) = remember_pids(hud_home, spawned)
    assert pid_alive(pid), "the background server outlives `hud task start`"
    (record,) = store(hud_home)
    assert record["slug"] == STRAWBERRY and record["task_id"] == "count"
    assert record["session_id"].startswith("sess-")
    proc = run_hud("task", "grade", STRAWBERRY, "--answer", "4", *extra, cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1.0\n"
    assert wait_gone(pid), "grading stops the background server"
    assert store(hud_home) == []


def test_split_flow_wrong_answer_scores_zero(
    run_hud: Callable[..., Any], demo_project: Path, hud_home: Path, spawned: list[int]
) -> None:
    proc = run_hud("task", "start", BANANA, "--source", ".", cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == BANANA_PROMPT + "\n"
    (pid,) = remember_pids(hud_home, spawned)
    proc = run_hud("task", "grade", BANANA, "--answer", "4", "--source", ".", cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "0.0\n"
    assert wait_gone(pid)


def test_grade_without_start_spawns_and_grades(
    run_hud: Callable[..., Any], demo_project: Path, hud_home: Path
) -> None:
    proc = run_hud("task", "grade", BANANA, "--answer", "3", "--source", ".", cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1.0\n"
    assert store(hud_home) == []


def test_failed_grade_stops_background_server(
    run_hud: Callable[..., Any], tmp_path: Path, hud_home: Path, spawned: list[int]
) -> None:
    project = tmp_path / "fragile"
    project.mkdir()
    (project / "env.py").write_text(
        "from hud import Environment\n\n"
        "env = Environment(name='fragile')\n\n\n"
        "@env.template\n"
        "async def fragile():\n"
        "    answer = yield 'say anything'\n"
        "    if answer == 'boom':\n"
        "        raise RuntimeError('grader exploded')\n"
        "    yield 1.0\n"
    )
    (project / "tasks.py").write_text("from env import fragile\n\ntasks = [fragile()]\n")
    proc = run_hud("task", "start", "fragile", "--source", ".", cwd=project)
    assert proc.returncode == 0, proc.stderr
    (pid,) = remember_pids(hud_home, spawned)
    proc = run_hud("task", "grade", "fragile", "--answer", "boom", "--source", ".", cwd=project)
    assert_user_error(proc, "grader exploded")
    assert wait_gone(pid), "the task was consumed: its background server must not linger"
    assert store(hud_home) == [], "the consumed session is forgotten"


def test_restart_of_spawned_task_does_not_leak_servers(
    run_hud: Callable[..., Any], demo_project: Path, hud_home: Path, spawned: list[int]
) -> None:
    for _ in range(2):
        proc = run_hud("task", "start", BANANA, "--source", ".", cwd=demo_project)
        assert proc.returncode == 0, proc.stderr
        remember_pids(hud_home, spawned)
    assert len(spawned) == 2
    proc = run_hud("task", "grade", BANANA, "--answer", "3", "--source", ".", cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1.0\n"
    for pid in spawned:
        assert wait_gone(pid), "every background server of a restarted task is stopped"
    assert store(hud_home) == []


# -- attached to a running `hud serve` -------------------------------------------------------


def test_split_flow_attached_via_url(
    run_hud: Callable[..., Any], demo_project: Path, hud_home: Path, served: Any
) -> None:
    proc = run_hud("task", "start", STRAWBERRY, "--url", served.url, cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == STRAWBERRY_PROMPT + "\n"
    assert "background server" not in proc.stderr
    (record,) = store(hud_home)
    assert record["url"] == f"tcp://{served.url}" and record["pid"] is None
    proc = run_hud(
        "task", "grade", STRAWBERRY, "--answer", "4", "--url", served.url, cwd=demo_project
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1.0\n"
    assert served.proc.poll() is None, "an attached server keeps running"
    assert store(hud_home) == []


def test_list_templates_via_url(run_hud: Callable[..., Any], tmp_path: Path, served: Any) -> None:
    proc = run_hud("task", "list", "--url", served.url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split("\t")[0] == "count"
    proc = run_hud("task", "list", "--url", f"tcp://{served.url}", "--json", cwd=tmp_path)
    (template,) = json.loads(proc.stdout)
    assert template["id"] == "count"
    assert template["args"]["required"] == ["sentence", "letter"]


def test_grade_never_grades_another_task(
    run_hud: Callable[..., Any], demo_project: Path, served: Any
) -> None:
    for slug in (STRAWBERRY, BANANA):
        proc = run_hud("task", "start", slug, "--url", served.url, cwd=demo_project)
        assert proc.returncode == 0, proc.stderr
    assert_grades_one(run_hud, BANANA, "3", served.url, demo_project)
    assert_grades_one(run_hud, STRAWBERRY, "4", served.url, demo_project)


def test_grade_by_id_and_args_without_remembered_session(
    run_hud: Callable[..., Any], demo_project: Path, served: Any, tmp_path: Path
) -> None:
    """A grader with no memory of `start` (another HOME) still targets the right task (G9)."""
    other_home = tmp_path / "other-home"
    other_home.mkdir()
    for slug in (STRAWBERRY, BANANA):
        proc = run_hud("task", "start", slug, "--url", served.url, cwd=demo_project)
        assert proc.returncode == 0, proc.stderr
    assert_grades_one(run_hud, BANANA, "3", served.url, demo_project, home=other_home)
    assert_grades_one(run_hud, STRAWBERRY, "4", served.url, demo_project, home=other_home)


def test_grade_other_task_starts_it_instead_of_adopting(
    run_hud: Callable[..., Any], demo_project: Path, served: Any, tmp_path: Path
) -> None:
    other_home = tmp_path / "other-home"
    other_home.mkdir()
    proc = run_hud("task", "start", STRAWBERRY, "--url", served.url, cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    # only STRAWBERRY is parked; grading BANANA must not adopt it
    assert_grades_one(run_hud, BANANA, "3", served.url, demo_project, home=other_home)
    # the parked STRAWBERRY is still there and gets its own answer
    assert_grades_one(run_hud, STRAWBERRY, "4", served.url, demo_project, home=other_home)


def test_index_tokens(run_hud: Callable[..., Any], demo_project: Path, served: Any) -> None:
    proc = run_hud("task", "start", "1", "--url", served.url, cwd=demo_project)
    assert (proc.returncode, proc.stdout) == (0, BANANA_PROMPT + "\n"), proc.stderr
    proc = run_hud("task", "start", "0", "--url", served.url, cwd=demo_project)
    assert (proc.returncode, proc.stdout) == (0, STRAWBERRY_PROMPT + "\n"), proc.stderr
    assert_grades_one(run_hud, "1", "3", served.url, demo_project)
    assert_grades_one(run_hud, "0", "4", served.url, demo_project)


def test_answer_file_stdin_and_path(
    run_hud: Callable[..., Any], demo_project: Path, served: Any, tmp_path: Path
) -> None:
    proc = run_hud("task", "start", BANANA, "--url", served.url, cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    proc = run_hud(
        "task",
        "grade",
        BANANA,
        "--answer-file",
        "-",
        "--url",
        served.url,
        cwd=demo_project,
        input="3\n",
    )
    assert (proc.returncode, proc.stdout) == (0, "1.0\n"), proc.stderr
    answer = tmp_path / "answer.txt"
    answer.write_text("4\n")
    proc = run_hud(
        "task",
        "grade",
        STRAWBERRY,
        "--answer-file",
        str(answer),
        "--url",
        served.url,
        cwd=demo_project,
    )
    assert (proc.returncode, proc.stdout) == (0, "1.0\n"), proc.stderr
    proc = run_hud(
        "task",
        "grade",
        BANANA,
        "--answer-file",
        "-",
        "--url",
        served.url,
        cwd=demo_project,
        input="7\n",
    )
    assert (proc.returncode, proc.stdout) == (0, "0.0\n"), proc.stderr


def test_out_files_and_json(
    run_hud: Callable[..., Any], demo_project: Path, served: Any, tmp_path: Path
) -> None:
    start_out = tmp_path / "start.json"
    grade_out = tmp_path / "grade.json"
    proc = run_hud(
        "task", "start", BANANA, "--url", served.url, "--out", str(start_out), cwd=demo_project
    )
    assert proc.returncode == 0, proc.stderr
    assert BANANA_PROMPT not in proc.stdout
    assert json.loads(start_out.read_text()) == {"prompt": BANANA_PROMPT}
    proc = run_hud(
        "task",
        "grade",
        BANANA,
        "--answer",
        "3",
        "--url",
        served.url,
        "-o",
        str(grade_out),
        cwd=demo_project,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(grade_out.read_text()) == {"score": 1.0}
    proc = run_hud("task", "start", STRAWBERRY, "--url", served.url, "--json", cwd=demo_project)
    assert json.loads(proc.stdout) == {"prompt": STRAWBERRY_PROMPT}
    proc = run_hud(
        "task",
        "grade",
        STRAWBERRY,
        "--answer",
        "4",
        "--url",
        served.url,
        "--json",
        cwd=demo_project,
    )
    assert json.loads(proc.stdout) == {"score": 1.0}


def test_explicit_args(run_hud: Callable[..., Any], demo_project: Path, served: Any) -> None:
    args = '{"sentence": "aaaa", "letter": "a"}'
    proc = run_hud("task", "start", "count", "--args", args, "--url", served.url, cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "How many times does 'a' appear in: 'aaaa'?\n"
    proc = run_hud(
        "task",
        "grade",
        "count",
        "--args",
        args,
        "--answer",
        "4",
        "--url",
        served.url,
        cwd=demo_project,
    )
    assert (proc.returncode, proc.stdout) == (0, "1.0\n"), proc.stderr


def test_acceptance_flow_on_default_port(
    run_hud: Callable[..., Any],
    demo_project: Path,
    hud_home: Path,
    hud_serve: Callable[..., Any],
) -> None:
    if not port_free(8765):
        pytest.skip("127.0.0.1:8765 is busy")
    try:
        server = hud_serve(cwd=demo_project)
    except AssertionError as exc:
        if "already in use" in str(exc):
            pytest.skip("127.0.0.1:8765 became busy")
        raise
    assert server.port == 8765
    proc = run_hud("task", "list", cwd=demo_project)
    assert proc.returncode == 0, proc.stderr
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == [STRAWBERRY, BANANA]
    proc = run_hud("task", "start", BANANA, cwd=demo_project)
    assert (proc.returncode, proc.stdout) == (0, BANANA_PROMPT + "\n"), proc.stderr
    # attaching to whatever listens on 8765 is said, with the server's address
    assert "attached to the server already running at tcp://127.0.0.1:8765" in proc.stderr
    (record,) = store(hud_home)
    assert record["url"] == "tcp://127.0.0.1:8765" and record["pid"] is None, "attached"
    proc = run_hud("task", "grade", BANANA, "--answer", "3", cwd=demo_project)
    assert (proc.returncode, proc.stdout) == (0, "1.0\n"), proc.stderr
    assert server.proc.poll() is None


# -- user errors ------------------------------------------------------------------------------


def test_unknown_task(run_hud: Callable[..., Any], demo_project: Path, served: Any) -> None:
    proc = run_hud("task", "start", "nope-123", "--source", ".", cwd=demo_project)
    assert_user_error(proc, "no task matching 'nope-123'", STRAWBERRY)
    proc = run_hud("task", "grade", "nope-123", "--answer", "1", "--source", ".", cwd=demo_project)
    assert_user_error(proc, "no task matching 'nope-123'")
    # attached: an id the server does not know -> the server and its nearest task ids, not a
    # raw "hud rpc error -32602"
    proc = run_hud("task", "start", "cuont", "--url", served.url, cwd=demo_project)
    line = assert_user_error(proc, "no task 'cuont' on the server at tcp://127.0.0.1:")
    assert "nearest: count" in line and "rpc error" not in proc.stderr
    proc = run_hud("task", "grade", "zzz", "--answer", "1", "--url", served.url, cwd=demo_project)
    assert_user_error(proc, "no task 'zzz' on the server", "available: count")


def test_non_string_prompt_and_json_output_as_the_official_cli(
    run_hud: Callable[..., Any], tmp_path: Path, hud_home: Path
) -> None:
    """A list-of-messages prompt prints as compact JSON on one line; ``--json`` outputs are
    indented (both ASCII-escaped), byte for byte what the official CLI prints."""
    (tmp_path / "env.py").write_text(
        "from hud import Environment\n\n"
        "env = Environment(name='msgs')\n\n\n"
        "@env.template()\n"
        "async def chat(word: str = 'caf\u00e9'):\n"
        "    answer = yield [{'role': 'user', 'content': f'say {word} \u2713'}]\n"
        "    yield 1.0 if answer == word else 0.0\n",
        encoding="utf-8",
    )
    (tmp_path / "tasks.py").write_text("from env import chat\n\ntasks = [chat()]\n")
    proc = run_hud("task", "list", "--json", cwd=tmp_path)
    rows = [{"slug": "chat", "id": "chat", "args": {}}]
    assert (proc.returncode, proc.stdout) == (0, json.dumps(rows, indent=2) + "\n"), proc.stderr
    proc = run_hud("task", "start", "chat", "--source", ".", cwd=tmp_path)
    prompt = [{"role": "user", "content": "say caf\u00e9 \u2713"}]
    assert (proc.returncode, proc.stdout) == (0, json.dumps(prompt) + "\n"), proc.stderr
    assert "\\u00e9" in proc.stdout and "\n" not in proc.stdout.rstrip("\n")
    assert "started on a background server" in proc.stderr
    proc = run_hud("task", "grade", "chat", "--answer", "caf\u00e9", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "1.0\n"), proc.stderr
    proc = run_hud("-q", "task", "start", "chat", "--source", ".", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", "-q: no notices"
    proc = run_hud("task", "grade", "chat", "--answer", "caf\u00e9", "--json", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, '{\n  "score": 1.0\n}\n'), proc.stderr


def test_bad_args_json(run_hud: Callable[..., Any], demo_project: Path) -> None:
    proc = run_hud("task", "start", STRAWBERRY, "--args", "{bad", "--source", ".", cwd=demo_project)
    assert_user_error(proc, "--args is not valid JSON")
    proc = run_hud(
        "task",
        "grade",
        STRAWBERRY,
        "--args",
        "[1, 2]",
        "--answer",
        "4",
        "--source",
        ".",
        cwd=demo_project,
    )
    assert_user_error(proc, "--args must be a JSON object")


def test_missing_source(run_hud: Callable[..., Any], tmp_path: Path) -> None:
    proc = run_hud("task", "list", "--source", "missing.py", cwd=tmp_path)
    assert_user_error(proc, "missing.py")
    proc = run_hud("task", "start", "x", "--source", "missing.py", cwd=tmp_path)
    assert_user_error(proc, "missing.py")


def test_answer_and_answer_file_conflict(run_hud: Callable[..., Any], demo_project: Path) -> None:
    proc = run_hud(
        "task",
        "grade",
        BANANA,
        "--answer",
        "3",
        "--answer-file",
        "-",
        "--source",
        ".",
        cwd=demo_project,
        input="3\n",
    )
    assert_user_error(proc)
    proc = run_hud(
        "task",
        "grade",
        BANANA,
        "--answer-file",
        "/nonexistent/answer",
        "--source",
        ".",
        cwd=demo_project,
    )
    assert_user_error(proc, "--answer-file")


def test_unreachable_url(demo_project: Path, hud_child_env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"127.0.0.1:{port}"
    commands = [
        ["task", "start", STRAWBERRY, "--url", url],
        ["task", "grade", STRAWBERRY, "--answer", "4", "--url", url],
        ["task", "list", "--url", url],
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hud", *cmd],
            cwd=demo_project,
            env=hud_child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in commands
    ]
    for proc, cmd in zip(procs, commands, strict=True):
        out, err = proc.communicate(timeout=60)
        done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        assert_user_error(done, "cannot reach", str(port))


def test_spawn_failure_is_one_line(
    run_hud: Callable[..., Any], tmp_path: Path, hud_home: Path
) -> None:
    project = tmp_path / "initfail"
    project.mkdir()
    (project / "env.py").write_text(
        "from hud import Environment\n\n"
        "env = Environment(name='initfail')\n\n\n"
        "@env.initialize\n"
        "async def setup():\n"
        "    raise RuntimeError('no database')\n\n\n"
        "@env.template\n"
        "async def t():\n"
        "    yield 'x'\n"
        "    yield 1.0\n"
    )
    (project / "tasks.py").write_text("from env import t\n\ntasks = [t()]\n")
    proc = run_hud("task", "start", "t", "--source", ".", cwd=project)
    line = assert_user_error(proc, "exited with code 1")
    assert "None" not in line
    log = (hud_home / ".hud" / "logs" / "task-server.log").read_text()
    assert "no database" in log
    assert store(hud_home) == []
