"""`Taskset`: construction, lookup, subsets, JSON/JSONL files and their error messages."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hud.environment.loader import LoadError
from hud.eval.task import Task
from hud.eval.taskset import TaskNotFoundError, Taskset


def row(tid: str, **args: object) -> Task:
    return Task(env="spelling", id=tid, args=dict(args))


@pytest.fixture
def five() -> Taskset:
    return Taskset(
        "words",
        [
            row("count", sentence="Strawberry world", letter="r"),
            row("count", sentence="banana", letter="a"),
            row("vowels", word="kiwi"),
            Task(env="judge", id="check", verifier=Task(env="grader", id="g")),
            Task(env="spelling", id="count", slug="7"),
        ],
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- construction and lookup -----------------------------------------------------------
def test_keyed_by_slug_in_insertion_order(five: Taskset) -> None:
    assert five.slugs == ["count-4376680e", "count-e8d5ddbb", "vowels-c62cd955", "check", "7"]
    assert [t.slug for t in five] == five.slugs
    assert [slug for slug, _ in five.items()] == five.slugs
    assert len(five) == 5
    assert five["check"].env == "judge"
    assert "check" in five
    assert "nope" not in five


def test_default_name_and_id() -> None:
    ts = Taskset()
    assert ts.name == "taskset"
    assert ts.taskset_id is None
    assert len(ts) == 0
    assert Taskset("x", taskset_id="abc").taskset_id == "abc"


def test_duplicate_slugs_rejected() -> None:
    with pytest.raises(ValueError, match=r"^duplicate task slugs: count-e8d5ddbb \(x2\)"):
        Taskset("t", [row("count", sentence="banana", letter="a")] * 2)


def test_non_task_item_rejected() -> None:
    with pytest.raises(TypeError, match="must be Task, got dict"):
        Taskset("t", [{"env": "e", "id": "i"}])  # type: ignore[list-item]


def test_missing_slug_lists_available_and_suggests(five: Taskset) -> None:
    with pytest.raises(KeyError) as info:
        five["count-4376680"]
    message = str(info.value)
    assert message.startswith("no task with slug 'count-4376680' in 'words' (available: ")
    assert "count-e8d5ddbb" in message
    assert message.endswith("did you mean 'count-4376680e'?")


def test_not_found_lists_only_a_few_slugs() -> None:
    ts = Taskset("many", [row("t", n=i) for i in range(20)])
    with pytest.raises(KeyError, match=r"\.\.\. \(12 more\)"):
        ts["zzz"]


def test_environment_names_include_verifiers(five: Taskset) -> None:
    assert five.environment_names() == {"spelling", "judge", "grader"}


# -- subsets ---------------------------------------------------------------------------
def test_filter_and_exclude_keep_order_and_metadata(five: Taskset) -> None:
    kept = Taskset("w", list(five), taskset_id="id1").filter(["check", "count-4376680e", "zz"])
    assert kept.slugs == ["count-4376680e", "check"]
    assert kept.name == "w"
    assert kept.taskset_id == "id1"
    assert kept["check"] is five["check"]
    assert five.exclude(["check", "7"]).slugs == [
        "count-4376680e",
        "count-e8d5ddbb",
        "vowels-c62cd955",
    ]
    assert five.filter("check").slugs == ["check"]
    assert len(five) == 5


def test_select_by_slug_id_and_index(five: Taskset) -> None:
    assert five.select("check").slugs == ["check"]
    assert five.select("count").slugs == ["count-4376680e", "count-e8d5ddbb", "7"]
    assert five.select("2").slugs == ["vowels-c62cd955"]
    # "7" is both a slug and not a valid index; index 4 is the same row
    assert five.select(" 4 , 7 ").slugs == ["7"]
    assert five.select(["check,0", "vowels"]).slugs == [
        "count-4376680e",
        "vowels-c62cd955",
        "check",
    ]
    assert five.select("check,,check,").slugs == ["check"]


def test_select_unknown_token(five: Taskset) -> None:
    with pytest.raises(ValueError, match=r"^no task matching 'nope' \(available: count-4376680e, "):
        five.select("check, nope")
    with pytest.raises(ValueError, match="no task matching '5'"):
        five.select("5")
    with pytest.raises(ValueError, match="no task ids given"):
        five.select(" , ")


def test_find(five: Taskset) -> None:
    assert five.find("check") is five["check"]
    assert five.find("count") is five["count-4376680e"]
    assert five.find("7") is five["7"]  # slug wins over index
    assert five.find("2") is five["vowels-c62cd955"]
    assert five.find(1) is five["count-e8d5ddbb"]
    with pytest.raises(TaskNotFoundError, match="no task matching '9'"):
        five.find("9")
    with pytest.raises(KeyError):
        Taskset().find("x")


def test_not_found_error_is_readable() -> None:
    with pytest.raises(ValueError) as info:
        Taskset("e").select("x")
    assert str(info.value) == "no task matching 'x' (the taskset is empty)"


# -- run (validation only) ---------------------------------------------------------------
async def test_run_validates_counts(five: Taskset) -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        await five.run(object(), max_concurrent=0)
    with pytest.raises(ValueError, match="group"):
        await five.run(object(), group=0)
    with pytest.raises(ValueError, match="no placement"):
        await Taskset("bare", [Task(env="e", id="t")]).run(object(), group=2, max_concurrent=3)


# -- JSON / JSONL files ------------------------------------------------------------------
def test_jsonl_rows_and_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "tasks.jsonl",
        '{"env":"spelling","id":"count","args":{"sentence":"Strawberry world","letter":"r"}}\n'
        "\n   \n"
        '{"env":"spelling","id":"vowels","args":{"word":"banana"},"slug":"vowels-banana",'
        '"columns":{"difficulty":"easy"}}\n',
    )
    ts = Taskset.from_file(path)
    assert ts.name == "tasks"
    assert ts.slugs == ["count-4376680e", "vowels-banana"]
    assert ts["vowels-banana"].columns == {"difficulty": "easy"}
    assert ts["count-4376680e"]._source == str(path.resolve())


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    sentence = "one\u2028two\u2029three\x85four\x0cfive"
    line = json.dumps(
        {"env": "spelling", "id": "count", "args": {"sentence": sentence}}, ensure_ascii=False
    )
    ts = Taskset.from_file(write(tmp_path / "tasks.jsonl", line + "\n"))
    assert [t.args["sentence"] for t in ts] == [sentence]


def test_json_single_object_and_array(tmp_path: Path) -> None:
    one = write(tmp_path / "one.json", '{"env":"e","id":"a","args":{"x":1}}')
    assert Taskset.from_file(one).slugs == ["a-c8b0bcdb"]
    many = write(
        tmp_path / "many.json", json.dumps([{"env": "e", "id": "a"}, {"env": "e", "id": "b"}])
    )
    ts = Taskset.from_file(str(many))
    assert ts.name == "many"
    assert ts.slugs == ["a", "b"]


def test_empty_jsonl_is_an_empty_taskset(tmp_path: Path) -> None:
    assert len(Taskset.from_file(write(tmp_path / "e.jsonl", "\n"))) == 0


def test_full_row_from_spec(tmp_path: Path) -> None:
    full = {
        "env": "spelling",
        "id": "vowels",
        "args": {"word": "banana"},
        "slug": "vowels-banana",
        "columns": {"difficulty": "easy"},
        "agent_config": {"timeout_seconds": 300},
        "validation": [{"name": "submit", "arguments": {"answer": "3"}}],
        "runtime_config": {
            "image": "spelling:latest",
            "resources": {"cpu": 1, "memory_mb": 2048},
            "limits": {"startup_timeout_s": 60, "run_timeout_s": 900},
        },
        "verifier": {"env": "judge", "id": "check", "args": {"expected": "3"}},
    }
    src = write(tmp_path / "full.json", json.dumps(full))
    task = Taskset.from_file(src)["vowels-banana"]
    assert task.runtime_config is not None and task.runtime_config.limits is not None
    assert task.runtime_config.limits.run_timeout_s == 900
    assert task.verifier is not None and task.verifier.slug == "check-cccc1863"
    out = Taskset("x", [task]).to_file(tmp_path / "out.jsonl")
    assert json.loads(out.read_text()) == {
        **full,
        "runtime_config": {**full["runtime_config"], "resources": {"cpu": 1.0, "memory_mb": 2048}},
        "verifier": {**full["verifier"], "slug": "check-cccc1863"},
    }


def test_to_file_formats(tmp_path: Path) -> None:
    ts = Taskset(
        "t",
        [
            Task(env="e", id="i", args={"w": "café", "n": None}),
            Task(
                env="e",
                id="g",
                runtime_config={"image": "x", "resources": {"gpu": {"type": "a100"}}},
            ),
        ],
    )
    out = ts.to_file(tmp_path / "sub" / "t.jsonl")
    assert out == tmp_path / "sub" / "t.jsonl"
    assert out.read_text(encoding="utf-8") == (
        '{"env": "e", "id": "i", "args": {"w": "caf\\u00e9", "n": null}, "slug": "i-e34b3f45"}\n'
        '{"env": "e", "id": "g", "args": {}, "slug": "g", '
        '"runtime_config": {"image": "x", "resources": {"gpu": {"type": "a100"}}}}\n'
    )
    text = ts.to_file(tmp_path / "t.json").read_text(encoding="utf-8")
    assert text.startswith('[\n  {\n    "env": "e",\n    "id": "i",\n    "args": {\n      "w"')
    assert text.endswith("}\n]\n")
    assert json.loads(text)[1]["runtime_config"]["resources"]["gpu"] == {"type": "a100"}


def test_to_file_rejects_other_suffixes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"use a \.json or \.jsonl file name"):
        Taskset().to_file(tmp_path / "t.yaml")


def test_round_trip(tmp_path: Path) -> None:
    ts = Taskset(
        "rt",
        [
            row("count", sentence="Strawberry world", letter="r"),
            Task(env="e", id="x", slug="custom", agent_config={"timeout_seconds": 5}),
            Task(env="e", id="v", verifier=Task(env="j", id="c", args={"k": [1, 2]})),
        ],
    )
    for name in ("rt.json", "rt.jsonl"):
        back = Taskset.from_file(ts.to_file(tmp_path / name))
        assert back.slugs == ts.slugs
        assert [t.model_dump() for t in back] == [t.model_dump() for t in ts]


def test_compose_paths_resolve_against_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write(
        data / "tasks.jsonl",
        '{"env":"e","id":"a","runtime_config":{"compose":{"document":"compose.yml","root":"."}}}\n'
        '{"env":"e","id":"b","verifier":{"env":"e","id":"v",'
        '"runtime_config":{"compose":{"document":"../c2.yml"}}}}\n',
    )
    monkeypatch.chdir(tmp_path)
    ts = Taskset.from_file("data/tasks.jsonl")
    compose = ts["a"].runtime_config.compose  # type: ignore[union-attr]
    assert compose is not None
    assert compose.document == str(data / "compose.yml")
    assert compose.root == str(data)
    verifier = ts["b"].verifier
    assert verifier is not None and verifier.runtime_config is not None
    assert verifier.runtime_config.compose is not None
    assert verifier.runtime_config.compose.document == str(tmp_path / "c2.yml")
    # written relative to the output file, so the copy loads the same paths
    out = ts.to_file(tmp_path / "out" / "copy.jsonl")
    first = json.loads(out.read_text().splitlines()[0])
    assert first["runtime_config"]["compose"] == {
        "document": "../data/compose.yml",
        "root": "../data",
    }
    again = Taskset.from_file(out)["a"].runtime_config.compose  # type: ignore[union-attr]
    assert again is not None and again.document == str(data / "compose.yml")


def test_duplicate_slugs_in_a_file_name_the_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.jsonl",
        '{"env":"e","id":"a"}\n{"env":"e","id":"b"}\n{"env":"f","id":"a"}\n',
    )
    with pytest.raises(ValueError) as info:
        Taskset.from_file(path)
    assert str(info.value) == (
        f'{path}: duplicate task slugs: a (line 1, line 3); give each row its own "slug"'
    )


# -- unknown keys (G16) ------------------------------------------------------------------
def test_unknown_keys_warn_once_per_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(
        tmp_path / "u.jsonl",
        '{"env":"e","id":"a","zzz":1}\n{"env":"e","id":"b","aaa":2,"zzz":3}\n'
        '{"env":"e","id":"c","verifier":{"env":"e","id":"v","extra":0}}\n',
    )
    with caplog.at_level(logging.WARNING, logger="hud.eval"):
        ts = Taskset.from_file(path)
    assert ts.slugs == ["a", "b", "c"]
    warnings = [r for r in caplog.records if r.name == "hud.eval"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert (
        warnings[0].getMessage() == f"{path}: ignoring unknown task keys: aaa, verifier.extra, zzz"
    )


def test_known_keys_do_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "k.json", '[{"env":"e","id":"a","columns":{"zzz":1},"slug":"s"}]')
    with caplog.at_level(logging.DEBUG, logger="hud.eval"):
        Taskset.from_file(path)
    assert [r for r in caplog.records if r.name == "hud.eval"] == []


def test_strict_rejects_unknown_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "s.jsonl", '{"env":"e","id":"a"}\n{"env":"e","id":"b","zzz":1}\n')
    with pytest.raises(LoadError) as info:
        Taskset.from_file(path, strict=True)
    assert str(info.value) == f"{path} line 2: unknown key 'zzz' (strict mode)"
    assert len(Taskset.from_file(path)) == 2


# -- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "tasks.jsonl",
            '{"env":"e","id":"a"}\n\n{"env":"e"}\n',
            "tasks.jsonl line 3: 'id' is required",
        ),
        (
            "tasks.jsonl",
            '{"id":"a","env":{"name":"e"}}',
            "tasks.jsonl line 1: 'env': Input should be a valid string",
        ),
        (
            "tasks.json",
            '[{"env":"e","id":"a"},{"env":"e","args":[]}]',
            "tasks.json index 1: 'id' is required; 'args': Input should be a valid dictionary",
        ),
        (
            "tasks.json",
            '{"env":"e","id":"a","slug":""}',
            "tasks.json: 'slug': slug must be a non-empty string",
        ),
        (
            "tasks.jsonl",
            '{"env":"e","id":"a","runtime_config":{"image":"x","gpu":1}}',
            "tasks.jsonl line 1: unknown field 'runtime_config.gpu'",
        ),
        (
            "tasks.jsonl",
            '{"env":"e","id":"a","runtime_config":{"resources":{"cpu":0}}}',
            "tasks.jsonl line 1: 'runtime_config.resources.cpu': Input should be greater than 0",
        ),
        (
            "tasks.jsonl",
            '{"env":"e","id":"a","verifier":{"env":"e","id":"b","verifier":{"env":"e","id":"c"}}}',
            "tasks.jsonl line 1: 'verifier': nested verifier tasks are not supported",
        ),
        (
            "tasks.jsonl",
            '{"env":"e","id":"a"}\n{bad\n',
            "tasks.jsonl line 2: invalid JSON: "
            "Expecting property name enclosed in double quotes (column 2)",
        ),
        ("tasks.jsonl", "[1]\n", "tasks.jsonl line 1: expected a JSON object, got an array"),
        ("tasks.json", "[\n  1,\n", "tasks.json: invalid JSON at line 3 column 1: Expecting value"),
        ("tasks.json", "5", "tasks.json: expected a JSON object or array of objects, got a number"),
        ("tasks.json", '["x"]', "tasks.json index 0: expected a JSON object, got a string"),
        (
            "tasks.json",
            "  \n",
            "tasks.json: file is empty (expected a JSON object or array of objects)",
        ),
    ],
)
def test_row_errors_name_file_place_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / name, text)
    with pytest.raises(LoadError) as info:
        Taskset.from_file(name)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_unsupported_and_missing_sources(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot load tasks from .*t\.txt: expected a \.json"):
        Taskset.from_file(write(tmp_path / "t.txt", "x"))
    with pytest.raises(ValueError, match=r"missing\.jsonl: no such file$"):
        Taskset.from_file(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match=r"missing\.py: no such file or directory$"):
        Taskset.from_file(tmp_path / "missing.py")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b'{"env":"\xff"}\n')
    with pytest.raises(LoadError, match="not UTF-8 text"):
        Taskset.from_file(path)
