"""Task rows from real env/task files: `.py` scans (G18, G21), JSON beside an env, the peer."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hud.environment.loader import LoadError, load_environment
from hud.eval.taskset import Taskset

PEER_PYTHON = Path(__file__).resolve().parents[1] / ".peer" / "hud" / "bin" / "python"

ENV_HEAD = """\
from hud import Environment, Task, Taskset

env = Environment("spelling")


@env.template()
async def count(sentence: str, letter: str = "r"):
    yield f"How many {letter!r} in {sentence!r}?"
    yield 1.0
"""

SINGLE = (
    ENV_HEAD
    + """
zeta = count("Strawberry world", "r")
alpha = count(sentence="banana", letter="a")
both = [zeta, count("kiwi", "i"), "not a task", 3]
alias = alpha
_private = count("hidden", "h")
more = Taskset("m", [count("apple", "p")])
pair = (count("pear", "e"),)
manual = Task(env="spelling", id="count", args={"sentence": "x"}, slug="manual")
"""
)

SPLIT_TASKS = """\
from env import count, env

late = count(sentence="banana", letter="a")
early = count(sentence="Strawberry world", letter="r")
"""

STRAWBERRY = "count-4376680e"  # official slug of {"sentence": "Strawberry world", "letter": "r"}
BANANA = "count-e8d5ddbb"  # official slug of {"sentence": "banana", "letter": "a"}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path) -> Iterator[None]:
    """Undo the sys.path entries and top-level modules the files under tmp_path added."""
    path_before = list(sys.path)
    yield
    sys.path[:] = path_before
    root = tmp_path.resolve()
    for name, module in list(sys.modules.copy().items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(root):
            del sys.modules[name]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# -- single file -----------------------------------------------------------------------
def test_single_file_source_order_and_dedupe(tmp_path: Path) -> None:
    src = write(tmp_path / "env.py", SINGLE)
    ts = Taskset.from_file(src)
    assert ts.name == "env"
    assert ts.slugs == [
        STRAWBERRY,
        BANANA,
        "count-97f9bc2d",
        "count-b87ec1a9",
        "count-55729c04",
        "manual",
    ]
    assert all(t._source == str(src.resolve()) for t in ts)


def test_rows_keep_the_live_env(tmp_path: Path) -> None:
    src = write(tmp_path / "env.py", SINGLE)
    ts = Taskset.from_module(src)
    env = load_environment(src)
    assert env.name == "spelling"
    assert ts[STRAWBERRY].environment is env
    assert ts["count-b87ec1a9"].environment is env  # from inside a Taskset
    assert ts["manual"].environment is None  # a plain Task has no link
    assert ts[BANANA].args == {"sentence": "banana", "letter": "a"}


def test_distinct_objects_with_one_slug_are_duplicates(tmp_path: Path) -> None:
    src = write(
        tmp_path / "dupes.py",
        ENV_HEAD + 'a = count("banana", "a")\nb = count(sentence="banana", letter="a")\n',
    )
    with pytest.raises(LoadError) as info:
        Taskset.from_file(src)
    assert (
        str(info.value) == f"{src}: duplicate task slugs: {BANANA} (x2); give each row its own slug"
    )


def test_file_without_tasks_is_empty(tmp_path: Path) -> None:
    ts = Taskset.from_file(write(tmp_path / "bare.py", ENV_HEAD))
    assert ts.name == "bare"
    assert len(ts) == 0


def test_import_errors_are_one_line(tmp_path: Path) -> None:
    boom = write(tmp_path / "boom.py", "raise RuntimeError('boom')\n")
    with pytest.raises(LoadError, match=r"^importing .*boom\.py failed: RuntimeError: boom$"):
        Taskset.from_file(boom)
    bad = write(tmp_path / "bad_syntax.py", "x = (\n")
    with pytest.raises(LoadError, match=r"^syntax error in .*bad_syntax\.py:1: "):
        Taskset.from_module(bad)
    with pytest.raises(LoadError, match=r"is not a \.py file or a directory"):
        Taskset.from_module(write(tmp_path / "t.json", "[]"))


# -- split layout (G18) ----------------------------------------------------------------
def test_split_layout_shares_the_env_module(tmp_path: Path) -> None:
    write(tmp_path / "env.py", ENV_HEAD)
    tasks = write(tmp_path / "tasks.py", SPLIT_TASKS)
    ts = Taskset.from_file(tasks)
    assert ts.name == "tasks"
    assert ts.slugs == [BANANA, STRAWBERRY]
    env = load_environment(tmp_path)  # a directory scan sees one Environment, not two
    assert ts[BANANA].environment is env
    assert load_environment(tmp_path / "env.py") is env
    assert ts[BANANA]._source == str(tasks.resolve())


def test_directory_scan(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "spelling_tasks"
    write(root / "env.py", ENV_HEAD + 'zeta = count("Strawberry world", "r")\n')
    write(root / "tasks.py", "from env import count, zeta\n\nkiwi = count('kiwi', 'i')\n")
    write(root / "a_broken.py", "raise RuntimeError('nope')\n")
    write(root / "conftest.py", "from env import count\n\nskipped = count('skip', 's')\n")
    write(root / "notes.txt", "not python")
    with caplog.at_level(logging.WARNING, logger="hud.environment"):
        ts = Taskset.from_file(root)
    assert ts.name == "spelling_tasks"
    # env.py before tasks.py; zeta collected once although both modules bind it
    assert ts.slugs == [STRAWBERRY, "count-97f9bc2d"]
    assert ts[STRAWBERRY]._source == str((root / "env.py").resolve())
    assert ts["count-97f9bc2d"]._source == str((root / "tasks.py").resolve())
    assert any("a_broken.py" in r.getMessage() for r in caplog.records)
    assert load_environment(root) is ts["count-97f9bc2d"].environment


def test_directory_given_as_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    write(root / "env.py", ENV_HEAD)
    write(root / "tasks.py", SPLIT_TASKS)
    monkeypatch.chdir(root)
    ts = Taskset.from_file(".")
    assert ts.name == "proj"
    assert ts.slugs == [BANANA, STRAWBERRY]


# -- JSON beside env.py ------------------------------------------------------------------
def test_jsonl_beside_env(tmp_path: Path) -> None:
    write(tmp_path / "env.py", ENV_HEAD)
    write(tmp_path / "tasks.py", SPLIT_TASKS)
    out = Taskset.from_file(tmp_path / "tasks.py").to_file(tmp_path / "tasks.jsonl")
    assert out.read_text().splitlines()[0] == (
        '{"env": "spelling", "id": "count", "args": {"sentence": "banana", "letter": "a"}, '
        f'"slug": "{BANANA}"}}'
    )
    rows = Taskset.from_file(out)
    assert rows.slugs == [BANANA, STRAWBERRY]
    assert rows[BANANA].environment is None
    assert rows[BANANA]._source == str(out.resolve())
    env = load_environment(out.parent)
    assert rows.environment_names() == {env.name}
    assert set(env.tasks) == {t.id for t in rows}


def test_json_select_like_the_cli(tmp_path: Path) -> None:
    write(
        tmp_path / "tasks.json",
        json.dumps(
            [
                {"env": "spelling", "id": "count", "args": {"sentence": "banana", "letter": "a"}},
                {"env": "spelling", "id": "vowels", "args": {"word": "kiwi"}},
                {"env": "spelling", "id": "count", "args": {"sentence": "Strawberry world"}},
            ]
        ),
    )
    ts = Taskset.from_file(tmp_path / "tasks.json")
    assert ts.select("count").slugs == [BANANA, "count-1559433c"]
    assert ts.select("2,vowels-c62cd955").slugs == ["vowels-c62cd955", "count-1559433c"]
    with pytest.raises(ValueError, match=r"no task matching 'x' \(available: count-e8d5ddbb, "):
        ts.select("x")


# -- against the official package (black box) ---------------------------------------------
def run_peer(code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(PEER_PYTHON), "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


peer = pytest.mark.skipif(not PEER_PYTHON.exists(), reason="official hud not installed")


@peer
@pytest.mark.peer
def test_peer_module_scan_and_files(tmp_path: Path) -> None:
    """Same rows and bytes as the official package; only the .py order differs (G21)."""
    peer_dir, our_dir = tmp_path / "peer", tmp_path / "ours"
    body = SINGLE.replace("alias = alpha\n", "")  # the official package rejects aliases
    for d in (peer_dir, our_dir):
        write(d / "env.py", body)
    peer_out = run_peer(
        "import json; from hud import Taskset\n"
        "ts = Taskset.from_file('env.py')\n"
        "ts.to_file('out.json'); ts.to_file('out.jsonl')\n"
        "print(json.dumps([ts.name, [t.slug for t in ts]]))\n",
        peer_dir,
    )
    name, peer_slugs = json.loads(peer_out)
    ours = Taskset.from_file(our_dir / "env.py")
    assert ours.name == name
    assert sorted(ours.slugs) == sorted(peer_slugs)
    assert STRAWBERRY in peer_slugs and BANANA in peer_slugs
    # official: alphabetical by variable name (alpha, both, manual, more, pair, zeta)
    assert peer_slugs[0] == BANANA
    assert ours.slugs[0] == STRAWBERRY
    reordered = Taskset(ours.name, [ours[s] for s in peer_slugs])
    for name in ("out.json", "out.jsonl"):
        reordered.to_file(our_dir / name)
        assert (our_dir / name).read_bytes() == (peer_dir / name).read_bytes()


@peer
@pytest.mark.peer
def test_peer_reads_and_writes_the_same_rows(tmp_path: Path) -> None:
    rows = [
        {"env": "e", "id": "i", "args": {"w": "café ✓", "n": None, "l": [1, 2.5, True]}},
        {
            "env": "e",
            "id": "g",
            "columns": {"k": None},
            "validation": [{"name": "submit"}],
            "agent_config": {"timeout_seconds": 300},
            "runtime_config": {
                "image": "x",
                "resources": {"gpu": {"type": "a100"}, "cpu": 2},
                "limits": {"run_timeout_s": 9},
            },
        },
        {"env": "e", "id": "s", "slug": "custom", "args": {"z": 1, "a": 2}},
        {"env": "e", "id": "v", "verifier": {"env": "j", "id": "c", "args": {"x": "1"}}},
    ]
    for d in ("peer", "ours"):
        write(tmp_path / d / "in.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    run_peer(
        "from hud import Taskset\n"
        "ts = Taskset.from_file('in.jsonl')\n"
        "ts.to_file('out/o.json'); ts.to_file('out/o.jsonl')\n",
        tmp_path / "peer",
    )
    ts = Taskset.from_file(tmp_path / "ours" / "in.jsonl")
    for name in ("o.json", "o.jsonl"):
        ts.to_file(tmp_path / "ours" / "out" / name)
        ours = (tmp_path / "ours" / "out" / name).read_bytes()
        assert ours == (tmp_path / "peer" / "out" / name).read_bytes()
