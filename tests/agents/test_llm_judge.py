"""LLMJudgeGrader against fake providers: OpenAI-compatible chat and Anthropic."""

from __future__ import annotations

import json

import pytest

from hud.agents.tool_agent import MissingKeyError
from hud.graders import LLMJudgeGrader
from hud.graders.llm import parse_verdict, weighted_value
from tests.agents.conftest import SECRET
from tests.agents.fakes import Fail, FakeProvider, Recorded, Reply


def verdicts(table: dict[str, str]):
    """A handler answering by the criterion in the prompt."""

    def handle(request: Recorded) -> Reply:
        prompt = request.text
        for needle, reply in table.items():
            if needle in prompt:
                return Reply(text=reply)
        return Reply(text="no idea")

    return handle


async def test_weighted_criteria_through_an_openai_compatible_server(fake: FakeProvider) -> None:
    fake.handler = verdicts(
        {
            "mentions Paris": '{"criterion_status": "MET", "explanation": "says Paris"}',
            "cites a source": (
                'Sure! ```json\n{"criterion_status": "UNMET", "explanation": "none"}\n```'
            ),
            "is rude": "Verdict: NOT MET, it is polite.",
        }
    )
    score = await LLMJudgeGrader.grade(
        1.0,
        answer="The capital is Paris.",
        question="Capital of France?",
        criteria=[("mentions Paris", 3.0), ("cites a source", 1.0), ("is rude", -2.0)],
        model="judge-model",
        base_url=f"{fake.url}/v1",
    )
    assert score.name == "LLMJudgeGrader" and score.value == pytest.approx(0.75)
    children = {c.name: c for c in score.children}
    assert children["mentions Paris"].value == 1.0 and children["mentions Paris"].weight == 3.0
    assert children["mentions Paris"].info["reason"] == "says Paris"
    assert children["cites a source"].value == 0.0  # JSON inside a code fence
    assert children["is rude"].value == 0.0 and children["is rude"].weight == -2.0
    assert len(fake.requests) == 3
    body = fake.requests[0].body
    assert body["model"] == "judge-model" and body["max_tokens"] == 1024
    assert "Capital of France?" in body["messages"][1]["content"]
    assert "The capital is Paris." in body["messages"][1]["content"]


async def test_penalty_only_criteria_and_anthropic(fake: FakeProvider, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    fake.handler = verdicts({"swears": '{"criterion_status":"MET","explanation":"it does"}'})
    score = await LLMJudgeGrader.grade(
        0.5,
        answer="darn",
        criteria=[("swears", -1.0), ("shouts", -1.0)],
        base_url=fake.url,
        provider="anthropic",
    )
    # only penalties: 1 + (-1) / 2
    assert score.value == pytest.approx(0.5) and score.weight == 0.5
    assert all(r.path.endswith("/v1/messages") for r in fake.requests)
    assert fake.requests[0].body["model"] == "claude-haiku-4-5"
    assert SECRET not in json.dumps(score.model_dump())


async def test_api_key_is_masked_in_recorded_parameters(fake: FakeProvider) -> None:
    fake.handler = verdicts({"x": '{"criterion_status":"MET"}'})
    score = await LLMJudgeGrader.grade(
        1.0, answer="a", criteria=["x"], base_url=f"{fake.url}/v1", api_key=SECRET, model="m"
    )
    assert fake.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert score.info["_parameters"]["api_key"] == "***"
    assert SECRET not in json.dumps(score.model_dump())


async def test_retries_and_failure(fake: FakeProvider) -> None:
    fake.script = [Fail(429, "busy")]
    fake.handler = verdicts({"x": "MET"})
    score = await LLMJudgeGrader.grade(
        1.0, answer="a", criteria=["x"], base_url=f"{fake.url}/v1", retry_base_delay=0.01
    )
    assert score.value == 1.0 and len(fake.requests) == 2
    fake.script = [Fail(500, "down")] * 2
    with pytest.raises(RuntimeError, match="LLM judge call failed: HTTP 500: down"):
        await LLMJudgeGrader.grade(
            1.0,
            answer="a",
            criteria=["x"],
            base_url=f"{fake.url}/v1",
            max_retries=1,
            retry_base_delay=0.01,
        )


async def test_no_criteria_and_no_provider() -> None:
    score = await LLMJudgeGrader.grade(1.0, answer="a", criteria=[])
    assert score.value == 0.0 and score.info["error"] == "no criteria given"
    with pytest.raises(MissingKeyError, match="ANTHROPIC_API_KEY"):
        await LLMJudgeGrader.grade(1.0, answer="a", criteria=["y"])


@pytest.mark.parametrize(
    ("reply", "met", "parsed"),
    [
        ('{"criterion_status": "MET", "explanation": "ok"}', True, True),
        ('{"criterion_status": "unmet"}', False, True),
        ("The criterion is UNMET because ... although parts are MET", False, True),
        ("MET.", True, True),
        ("I cannot tell.", False, False),
    ],
)
def test_parse_verdict(reply: str, met: bool, parsed: bool) -> None:
    assert parse_verdict(reply)[0] is met and parse_verdict(reply)[2] is parsed


def test_weighted_value() -> None:
    assert weighted_value([(1.0, 0.5), (0.0, 0.5)]) == 0.5
    assert weighted_value([(1.0, 1.0), (1.0, -2.0)]) == 0.0  # clamped
    assert weighted_value([(0.0, -1.0)]) == 1.0
    assert weighted_value([]) == 0.0
