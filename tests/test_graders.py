"""Tests for hud.graders: score models, Grader, combinators, text scorers, BashGrader."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

import pytest
from pydantic import ValidationError

import hud.graders as graders
from hud.graders import (
    BashGrader,
    EvaluationResult,
    Grader,
    LLMJudgeGrader,
    SubScore,
    combine,
    combine_all,
    combine_any,
    contains,
    contains_all,
    contains_any,
    exact_match,
    f1_score,
    normalize,
    numeric_match,
)
from hud.graders.combine import dedupe_names

ROOT = pathlib.Path(__file__).resolve().parents[1]
PEER_PYTHON = ROOT / ".peer" / "hud" / "bin" / "python"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hud.graders"]


# --------------------------------------------------------------------------- package surface


def test_public_api() -> None:
    assert set(graders.__all__) == {
        "SubScore",
        "EvaluationResult",
        "Grader",
        "BashGrader",
        "LLMJudgeGrader",
        "combine",
        "combine_any",
        "combine_all",
        "exact_match",
        "contains",
        "contains_any",
        "contains_all",
        "numeric_match",
        "f1_score",
        "normalize",
    }
    for name in graders.__all__:
        assert getattr(graders, name) is not None


# --------------------------------------------------------------------------- SubScore


def test_subscore_defaults_and_dump_order() -> None:
    s = SubScore(name="s", value=0.25)
    assert s.model_dump_json() == (
        '{"name":"s","weight":1.0,"value":0.25,"children":null,"info":null}'
    )


def test_subscore_extra_forbidden() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SubScore(name="s", value=1.0, foo=1)


@pytest.mark.parametrize("value", [-0.01, 1.01])
def test_subscore_value_range(value: float) -> None:
    with pytest.raises(ValidationError):
        SubScore(name="s", value=value)


def test_subscore_negative_weight_allowed() -> None:
    assert SubScore(name="p", value=1.0, weight=-0.5).weight == -0.5


def test_subscore_metadata_alias_and_score() -> None:
    a = SubScore(name="a", value=0.5, metadata={"k": 1})
    b = SubScore(name="b", value=0.5, info={"k": 2})
    c = SubScore.model_validate({"name": "c", "value": 1, "metadata": {"k": 3}})
    assert a.info == {"k": 1} and a.metadata == {"k": 1}
    assert b.info == {"k": 2} and b.metadata == {"k": 2}
    assert c.info == {"k": 3}
    assert a.score == 0.5
    assert "metadata" not in a.model_dump()
    with pytest.raises(AttributeError):
        a.score = 0.1  # type: ignore[misc]


def test_subscore_info_and_metadata_together_rejected() -> None:
    with pytest.raises(ValidationError):
        SubScore(name="a", value=1, info={}, metadata={"a": 1})


def test_subscore_to_summary_drops_info_recursively() -> None:
    leaf = SubScore(name="c", value=0.5, info={"z": 1})
    parent = SubScore(name="p", value=1, weight=0.5, children=[leaf], info={"q": 2})
    assert parent.to_summary() == {
        "name": "p",
        "weight": 0.5,
        "value": 1.0,
        "children": [{"name": "c", "weight": 1.0, "value": 0.5, "children": None}],
    }
    assert list(parent.to_summary()) == ["name", "weight", "value", "children"]
    # the model itself is unchanged
    assert parent.info == {"q": 2} and parent.children is not None
    assert parent.children[0].info == {"z": 1}


# --------------------------------------------------------------------------- EvaluationResult


def test_evaluation_result_json_key_order() -> None:
    result = EvaluationResult(reward=0.25, content="c", subscores=[SubScore(name="s", value=0.25)])
    assert result.model_dump_json() == (
        '{"reward":0.25,"done":true,"content":"c","info":{},"isError":false,'
        '"subscores":[{"name":"s","weight":1.0,"value":0.25,"children":null,"info":null}]}'
    )


def test_evaluation_result_extra_allowed_and_from_float() -> None:
    result = EvaluationResult(reward=0.3, extra_field=1)
    assert json.loads(result.model_dump_json())["extra_field"] == 1
    f = EvaluationResult.from_float(0.5)
    assert isinstance(f, EvaluationResult)
    assert f.model_dump() == {
        "reward": 0.5,
        "done": True,
        "content": None,
        "info": {},
        "isError": False,
        "subscores": None,
    }


def test_evaluation_result_consistent_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hud.graders")
    EvaluationResult(
        reward=0.505,
        subscores=[
            SubScore(name="a", value=0.5, weight=0.5),
            SubScore(name="b", value=0.5, weight=0.5),
        ],
    )
    EvaluationResult(reward=0.5, subscores=[])
    assert warnings_of(caplog) == []


def test_evaluation_result_duplicate_names_warn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hud.graders")
    result = EvaluationResult(
        reward=0.5,
        subscores=[SubScore(name="a", value=0.5, weight=0.5)] * 2,
    )
    assert result.reward == 0.5
    assert warnings_of(caplog) == ["Duplicate subscore names: {'a'}"]


def test_evaluation_result_weight_sum_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hud.graders")
    EvaluationResult(reward=0.55, subscores=[SubScore(name="a", value=0.5, weight=1.1)])
    messages = warnings_of(caplog)
    assert len(messages) == 1
    assert messages[0].startswith("Positive subscore weights should sum to ~1.0 (got 1.1000)")


def test_evaluation_result_reward_mismatch_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hud.graders")
    EvaluationResult(reward=0.9, subscores=[SubScore(name="a", value=0.5)])
    assert warnings_of(caplog) == [
        "Subscores don't match reward: sum(value*weight)=0.5000 but reward=0.9000"
    ]


def test_evaluation_result_tolerance_edges(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hud.graders")
    EvaluationResult(reward=0.509, subscores=[SubScore(name="a", value=0.5)])
    assert warnings_of(caplog) == []
    EvaluationResult(reward=0.511, subscores=[SubScore(name="a", value=0.5)])
    assert len(warnings_of(caplog)) == 1


# --------------------------------------------------------------------------- Grader


class Plain(Grader):
    name = "Plain"

    @classmethod
    def compute_score(cls, x: float = 1.0, **kwargs: Any) -> float:
        return x


class Pair(Grader):
    name = "Pair"

    @classmethod
    async def compute_score(cls, x: float = 1.0, **kwargs: Any) -> tuple[float, dict[str, Any]]:
        await asyncio.sleep(0)
        return x, {"k": "v"}


class Nested(Grader):
    name = "Nested"

    @classmethod
    async def compute_score(cls, **kwargs: Any) -> SubScore:
        return SubScore(
            name="inner",
            value=0.5,
            weight=0.3,
            info={"a": 1},
            children=[SubScore(name="c", value=1.0)],
        )


class Opaque:
    pass


async def test_grade_sync_float() -> None:
    s = await Plain.grade(0.5, x=0.25)
    assert s.model_dump() == {
        "name": "Plain",
        "weight": 0.5,
        "value": 0.25,
        "children": None,
        "info": {"_parameters": {"x": 0.25}},
    }


async def test_grade_name_override_and_bool() -> None:
    s = await Plain.grade(0.5, name="custom", x=True)
    assert (s.name, s.value, s.info) == ("custom", 1.0, {"_parameters": {"x": True}})
    assert (await Plain.grade(0.5, name="")).name == "Plain"


async def test_grade_async_pair_with_json_safe_parameters() -> None:
    s = await Pair.grade(
        1.0,
        x=0.3,
        obj=Opaque(),
        tup=(1, 2),
        nested={"a": {1, 2}, "o": Opaque()},
        path=pathlib.Path("/tmp"),
        when=datetime.datetime(2020, 1, 2),
        sub=SubScore(name="s", value=1.0),
        keys={1: 2},
        none=None,
    )
    assert s.value == 0.3
    assert s.info == {
        "k": "v",
        "_parameters": {
            "x": 0.3,
            "obj": "<Opaque: not serializable>",
            "tup": [1, 2],
            "nested": {"a": [1, 2], "o": "<Opaque: not serializable>"},
            "path": "/tmp",
            "when": "2020-01-02T00:00:00",
            "sub": {"name": "s", "weight": 1.0, "value": 1.0, "children": None, "info": None},
            "keys": {"1": 2},
            "none": None,
        },
    }
    json.dumps(s.info)  # JSON-safe


async def test_grade_subscore_result_keeps_value_children_info() -> None:
    s = await Nested.grade(0.7, q=1)
    assert s.name == "Nested" and s.weight == 0.7 and s.value == 0.5
    assert s.children == [SubScore(name="c", value=1.0)]
    assert s.info == {"a": 1, "_parameters": {"q": 1}}


async def test_grade_overwrites_user_parameters_key() -> None:
    class Own(Grader):
        @classmethod
        def compute_score(cls, **kwargs: Any) -> tuple[float, dict[str, Any]]:
            return 1.0, {"_parameters": "mine", "z": 1}

    s = await Own.grade(1.0)
    assert s.name == "BaseGrader"
    assert s.info == {"_parameters": {}, "z": 1}


async def test_grade_errors() -> None:
    class Big(Grader):
        @classmethod
        def compute_score(cls, **kwargs: Any) -> float:
            return 2.0

    class Text(Grader):
        @classmethod
        async def compute_score(cls, **kwargs: Any) -> str:
            return "x"

    with pytest.raises(NotImplementedError):
        await Grader.grade(1.0)
    with pytest.raises(ValidationError):
        await Big.grade(1.0)
    with pytest.raises(ValueError):
        await Text.grade(1.0)


async def test_llm_judge_needs_a_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without any key the judge says which variable to set (full tests: tests/agents)."""
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "HUD_API_KEY"):
        monkeypatch.setenv(name, "")
    assert LLMJudgeGrader.name == "LLMJudgeGrader"
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY is not set"):
        await LLMJudgeGrader.grade(1.0, answer="x", criteria=["y"])


# --------------------------------------------------------------------------- combine


async def test_combine_normalizes_positive_keeps_penalties(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hud.graders")
    a = SubScore(name="a", value=1.0, weight=2.0)
    result = await combine(
        a,
        SubScore(name="b", value=0.5, weight=2.0),
        SubScore(name="p", value=1.0, weight=-0.5),
    )
    assert [s.weight for s in result.subscores or []] == [0.5, 0.5, -0.5]
    assert result.reward == 0.25
    assert a.weight == 2.0  # inputs not mutated
    messages = warnings_of(caplog)
    assert len(messages) == 1
    assert messages[0].startswith("grader weights sum to 4.0000, not 1.0; normalizing")


async def test_combine_silent_when_weights_sum_to_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hud.graders")
    result = await combine(
        SubScore(name="x", value=0.3, weight=0.1),
        SubScore(name="y", value=0.7, weight=0.2),
        SubScore(name="z", value=0.7, weight=0.7),
    )
    assert result.reward == pytest.approx(0.66)
    assert warnings_of(caplog) == []


async def test_combine_is_unclamped_by_default() -> None:
    result = await combine(
        SubScore(name="a", value=0.0, weight=1.0), SubScore(name="p", value=1.0, weight=-0.5)
    )
    assert result.reward == -0.5


async def test_combine_clamp_opt_in(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hud.graders")
    result = await combine(
        SubScore(name="a", value=0.0, weight=1.0),
        SubScore(name="p", value=1.0, weight=-0.5),
        clamp=True,
    )
    assert result.reward == 0.0
    assert [s.weight for s in result.subscores or []] == [1.0, -0.5]
    assert warnings_of(caplog) == []


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["a", "a", "b"], ["a-1", "a-2", "b"]),
        (["a", "a", "a-1", "a"], ["a-2", "a-3", "a-1", "a-4"]),
        (["a", "a", "a-2"], ["a-1", "a-3", "a-2"]),
        (["a-1", "a-1", "a"], ["a-1-1", "a-1-2", "a"]),
        (["a", "b", "a", "b"], ["a-1", "b-1", "a-2", "b-2"]),
        (["a", "a", "a-1", "a-1"], ["a-2", "a-3", "a-1-1", "a-1-2"]),
        (["", ""], ["-1", "-2"]),
        (["x", "y"], ["x", "y"]),
    ],
)
def test_dedupe_names(names: list[str], expected: list[str]) -> None:
    assert dedupe_names(names) == expected


async def test_combine_dedupes_top_level_only() -> None:
    child = [SubScore(name="c", value=1.0), SubScore(name="c", value=0.0)]
    result = await combine(
        SubScore(name="a", value=1.0, weight=0.5, children=child),
        SubScore(name="a", value=0.0, weight=0.5, info={"i": 1}),
    )
    subs = result.subscores or []
    assert [s.name for s in subs] == ["a-1", "a-2"]
    assert [c.name for c in subs[0].children or []] == ["c", "c"]
    assert subs[1].info == {"i": 1}


async def test_combine_awaits_concurrently() -> None:
    ready = asyncio.Event()

    async def waiter() -> SubScore:
        await asyncio.wait_for(ready.wait(), 2)
        return SubScore(name="w", value=1.0, weight=0.5)

    async def setter() -> SubScore:
        ready.set()
        return SubScore(name="s", value=0.0, weight=0.5)

    result = await combine(waiter(), setter())
    assert [s.name for s in result.subscores or []] == ["w", "s"]
    assert result.reward == 0.5


async def test_combine_with_grader_awaitables() -> None:
    result = await combine(Plain.grade(0.5, x=1.0), Pair.grade(0.5, x=0.0))
    assert result.reward == 0.5
    assert [s.name for s in result.subscores or []] == ["Plain", "Pair"]


@pytest.mark.parametrize(
    ("items", "error", "message"),
    [
        ((), ValueError, "subscores must not be empty"),
        (
            (SubScore(name="p", value=1, weight=-1),),
            ValueError,
            "subscores must include at least one positive weight",
        ),
        (
            (SubScore(name="p", value=1, weight=0),),
            ValueError,
            "subscores must include at least one positive weight",
        ),
        ((1.0,), TypeError, "Expected SubScore or Awaitable\\[SubScore\\], got float"),
        (([SubScore(name="x", value=1)],), TypeError, "got list"),
    ],
)
async def test_combine_errors(items: tuple[Any, ...], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        await combine(*items)


async def test_combine_awaitable_must_yield_subscore() -> None:
    async def bad() -> float:
        return 1.0

    with pytest.raises(TypeError, match="got float"):
        await combine(bad())


def test_combine_any_all() -> None:
    group = [
        SubScore(name="a", value=0.2, weight=0.3),
        SubScore(name="a", value=0.7, info={"k": 1}),
        SubScore(name="b", value=0.4),
    ]
    best = combine_any(0.5, group)
    worst = combine_all(0.5, group, name="strict")
    assert (best.name, best.weight, best.value) == ("any", 0.5, 0.7)
    assert (worst.name, worst.weight, worst.value) == ("strict", 0.5, 0.2)
    assert combine_all(1.0, group).name == "all"
    for node in (best, worst):
        assert [c.name for c in node.children or []] == ["a-1", "a-2", "b"]
        assert node.children is not None and node.children[1].info == {"k": 1}
    assert group[0].name == "a"
    assert combine_any(1.0, tuple(group[2:])).value == 0.4
    for fn in (combine_any, combine_all):
        with pytest.raises(ValueError, match="must not be empty"):
            fn(1.0, [])


# --------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Cat, a dog!", "cat dog"),
        ("  An  apple-pie\tTHE END.  ", "apple pie end"),
        ("théâtre_x (y)", "théâtre_x y"),
        ("Anne a an", "anne"),
        (3.5, "3 5"),
        (None, "none"),
        ("“hello” world", "hello world"),
        ("it's 3.50$", "it s 3 50"),
        ("A", ""),
        ("", ""),
    ],
)
def test_normalize(text: Any, expected: str) -> None:
    assert normalize(text) == expected


def test_exact_match() -> None:
    assert exact_match("The Cat!", "cat") == 1.0
    assert exact_match("The Cat!", "cat", normalize_text=False) == 0.0
    assert exact_match(" Cat ", "cat", normalize_text=False) == 1.0
    assert exact_match("the cat", "cat", normalize_text=False) == 0.0
    assert exact_match(3, "3") == 1.0
    assert exact_match("dog", "cat") == 0.0


def test_contains_family() -> None:
    assert contains("Hello World", "world") == 1.0
    assert contains("Hello World", "world", case_sensitive=True) == 0.0
    assert contains(123, "2") == 1.0
    assert contains_any("abc", ["X", "B"]) == 1.0
    assert contains_any("abc", ["x", "y"]) == 0.0
    assert contains_any("abc", []) == 0.0
    assert contains_any("ABC", ["b"], case_sensitive=True) == 0.0
    assert contains_all("abc", ["A", "c"]) == 1.0
    assert contains_all("abc", ["A", "d"]) == 0.0
    assert contains_all("abc", []) == 1.0
    assert contains_all("ABC", ["A", "b"], case_sensitive=True) == 0.0


@pytest.mark.parametrize(
    ("answer", "expected", "tolerance", "score"),
    [
        ("about 3.50 dollars", 3.5, 0.0, 1.0),
        ("-2", -2, 0.0, 1.0),
        ("x 3.", 3, 0.0, 1.0),
        (".5", 0.5, 0.0, 1.0),
        ("1,000", 1000, 0.0, 0.0),
        ("1e3", 1000, 0.0, 1.0),
        ("2E-2", 0.02, 0.0, 1.0),
        ("3.6", 3.5, 0.1, 0.0),
        ("3.6", 3.5, 0.1000001, 1.0),
        ("no number", 0, 0.0, 0.0),
        (None, 0, 0.0, 0.0),
        (3.5, 3.5, 0.0, 1.0),
        ("- 4", -4, 0.0, 0.0),
        ("a-4", -4, 0.0, 1.0),
        ("12.34.56", 12.34, 0.0, 1.0),
        ("5", 5, -1.0, 0.0),
        ("nan", float("nan"), 0.0, 0.0),
    ],
)
def test_numeric_match(answer: Any, expected: float, tolerance: float, score: float) -> None:
    assert numeric_match(answer, expected, tolerance=tolerance) == score


@pytest.mark.parametrize(
    ("answer", "reference", "score"),
    [
        ("the cat sat", "cat sat on mat", 2 / 3),
        ("a a b", "a b b", 2 / 3),
        ("Cat!", "cat", 1.0),
        ("a b c d", "a b", 0.5),  # "a" is an article
        ("one two three four", "two four", 2 / 3),
        ("cat cat cat", "cat", 0.5),
        ("", "", 0.0),
        ("the", "a", 0.0),
        ("x y z", "p q", 0.0),
    ],
)
def test_f1_score(answer: str, reference: str, score: float) -> None:
    assert f1_score(answer, reference) == pytest.approx(score)


# --------------------------------------------------------------------------- BashGrader


def _gone(pid: int) -> bool:
    """True once ``pid`` no longer exists or is a zombie."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def _wait_gone(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        await asyncio.sleep(0.05)
    return _gone(pid)


async def test_bash_success_captures_output() -> None:
    s = await BashGrader.grade(1.0, command="echo hi; echo err >&2; exit 0")
    assert s.model_dump() == {
        "name": "BashGrader",
        "weight": 1.0,
        "value": 1.0,
        "children": None,
        "info": {
            "exit_code": 0,
            "stdout": "hi\n",
            "stderr": "err\n",
            "_parameters": {"command": "echo hi; echo err >&2; exit 0"},
        },
    }


async def test_bash_nonzero_exit(tmp_path: pathlib.Path) -> None:
    s = await BashGrader.grade(0.5, name="check", command="exit 3", cwd=str(tmp_path))
    assert (s.name, s.weight, s.value) == ("check", 0.5, 0.0)
    assert s.info == {
        "exit_code": 3,
        "stdout": "",
        "stderr": "",
        "_parameters": {"command": "exit 3", "cwd": str(tmp_path)},
    }


async def test_bash_runs_in_cwd_as_login_shell(tmp_path: pathlib.Path) -> None:
    (tmp_path / "marker.txt").write_text("x")
    s = await BashGrader.compute_score(
        command="pwd; test -f marker.txt; echo $0", cwd=str(tmp_path)
    )
    assert s.value == 1.0
    assert s.info is not None
    assert s.info["stdout"] == f"{tmp_path}\n/bin/bash\n"
    s = await BashGrader.compute_score(command="shopt -q login_shell")
    assert s.value == 1.0


async def test_bash_stdin_is_closed() -> None:
    s = await BashGrader.compute_score(command="read x; echo rc=$?", timeout_seconds=5)
    assert s.info is not None and s.info["stdout"] == "rc=1\n"


async def test_bash_invalid_utf8_replaced() -> None:
    s = await BashGrader.compute_score(command=r"printf '\377ok'; printf '\376' >&2")
    assert s.info is not None
    assert (s.info["stdout"], s.info["stderr"]) == ("\ufffdok", "\ufffd")


async def test_bash_killed_by_signal() -> None:
    s = await BashGrader.compute_score(command="kill -9 $$")
    assert s.value == 0.0 and s.info is not None and s.info["exit_code"] == -9


async def test_bash_timeout_kills_process_group(tmp_path: pathlib.Path) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    s = await BashGrader.grade(
        1.0,
        command=f"echo start; sleep 30 & echo $! > {pidfile}; wait",
        timeout_seconds=2.0,
    )
    assert time.monotonic() - started < 25  # did not wait for the 30 s child
    assert s.value == 0.0
    assert s.info is not None
    assert {k: s.info[k] for k in ("exit_code", "stdout", "stderr", "timed_out", "timeout")} == {
        "exit_code": None,
        "stdout": "start\n",
        "stderr": "",
        "timed_out": True,
        "timeout": 2.0,
    }
    assert await _wait_gone(int(pidfile.read_text()))


async def test_bash_zero_timeout() -> None:
    s = await BashGrader.compute_score(command="sleep 1", timeout_seconds=0)
    assert s.value == 0.0 and s.info is not None and s.info["timed_out"] is True


async def test_bash_cancel_kills_process_group(tmp_path: pathlib.Path) -> None:
    pidfile = tmp_path / "pid"
    task = asyncio.create_task(
        BashGrader.grade(1.0, command=f"sleep 30 & echo $! > {pidfile}; wait")
    )
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _wait_gone(int(pidfile.read_text()))


async def test_bash_background_child_does_not_block() -> None:
    started = time.monotonic()
    s = await BashGrader.compute_score(command="(sleep 5 &); echo bg")
    assert time.monotonic() - started < 4
    assert s.value == 1.0 and s.info is not None and s.info["stdout"] == "bg\n"


async def test_bash_missing_cwd(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope"
    s = await BashGrader.compute_score(command="true", cwd=str(missing))
    assert s.value == 0.0
    assert s.info == {
        "exit_code": None,
        "stdout": "",
        "stderr": f"working directory not found: {missing}",
        "timed_out": False,
    }


async def test_bash_requires_command() -> None:
    with pytest.raises(ValueError, match="BashGrader requires command"):
        await BashGrader.grade(1.0)


class SubprocessRunner:
    """A real `CommandRunner`: runs bash with an empty environment in a fixed root."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.calls: list[tuple[str, str | None, float | None]] = []

    async def exec(
        self, command: str, *, cwd: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        self.calls.append((command, cwd, timeout))
        proc = await asyncio.create_subprocess_exec(
            "/bin/bash",
            "-lc",
            command,
            cwd=str(self.root / (cwd or ".")),
            env={},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return {"exit_code": None, "stdout": "", "stderr": "", "timed_out": True}
        return {"exit_code": proc.returncode, "stdout": out.decode(), "stderr": err.decode()}


async def test_bash_workspace_opt_in(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.setenv("HUD_GRADER_TEST", "host")
    runner = SubprocessRunner(tmp_path)
    s = await BashGrader.grade(
        1.0, command='pwd; echo "[$HUD_GRADER_TEST]"', cwd="sub", workspace=runner
    )
    assert runner.calls == [('pwd; echo "[$HUD_GRADER_TEST]"', "sub", 600.0)]
    assert s.value == 1.0
    assert s.info is not None
    assert s.info["stdout"] == f"{tmp_path / 'sub'}\n[]\n"
    assert s.info["_parameters"]["workspace"] == "<SubprocessRunner: not serializable>"

    s = await BashGrader.grade(1.0, command="exit 4", workspace=runner)
    assert s.value == 0.0 and s.info is not None and s.info["exit_code"] == 4

    s = await BashGrader.grade(1.0, command="sleep 5", timeout_seconds=0.3, workspace=runner)
    assert s.value == 0.0 and s.info is not None
    assert (s.info["timed_out"], s.info["timeout"], s.info["exit_code"]) == (True, 0.3, None)


# --------------------------------------------------------------------------- official package

PEER_SNIPPET = r"""
import asyncio, json, logging, warnings
warnings.simplefilter("ignore"); logging.disable(logging.CRITICAL)
from hud.graders import *
S = SubScore
async def main():
    out = [normalize("The Cat, a dog!"), f1_score("the cat sat", "cat sat on mat"),
           numeric_match("about 3.50 dollars", 3.5), numeric_match(".5e1", 5),
           exact_match(" Cat ", "cat", normalize_text=False), contains_all("abc", [])]
    r = await combine(S(name="a", value=1, weight=2), S(name="a", value=0.5, weight=2),
                      S(name="p", value=1, weight=-0.5, info={"x": 1}))
    out.append(r.model_dump_json())
    out.append(combine_any(0.5, [S(name="b", value=0.2), S(name="b", value=0.9)]).model_dump_json())
    leaf = S(name="c", value=0, metadata={"z": 1})
    out.append(S(name="p", value=1, children=[leaf]).to_summary())
    out.append((await BashGrader.grade(0.5, command="echo hi; exit 2")).model_dump_json())
    print(json.dumps(out))
asyncio.run(main())
"""


@pytest.mark.peer
def test_matches_official_package() -> None:
    if not PEER_PYTHON.exists():
        pytest.skip("official hud package not installed in .peer/hud")

    def run(python: str, env: dict[str, str]) -> Any:
        done = subprocess.run(
            [python, "-c", PEER_SNIPPET],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd="/",
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ours = run(sys.executable, {**base, "PYTHONPATH": str(ROOT)})
    theirs = run(str(PEER_PYTHON), base)
    assert ours == theirs


@pytest.fixture(autouse=True)
def _no_user_profile(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BashGrader runs a login shell; with the machine's HOME its profile can write to stderr
    (a stuck `pyenv rehash` lock did), which these exact-output assertions would count."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
