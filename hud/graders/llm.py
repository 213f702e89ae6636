"""`LLMJudgeGrader`: judge an answer against weighted natural-language criteria with an LLM.

Each criterion is one model call (all in parallel) answering
``{"criterion_status": "MET"|"UNMET", "explanation": ...}``; replies are parsed tolerantly
(JSON first, then a token scan that checks UNMET before MET). Negative weights are penalties:
a MET penalty criterion lowers the score.

Providers (sdk.md §9; ours is not gateway-only): ``provider="anthropic"`` (Messages API),
``"openai"`` / ``"openai_compatible"`` (Chat Completions; any server via ``base_url``) or
``"gateway"`` (the HUD gateway, OpenAI-compatible, ``HUD_API_KEY``). Without ``provider``: a
``base_url`` means OpenAI-compatible; else ``claude-*`` models use ``ANTHROPIC_API_KEY``,
``gpt-*``/``o*`` models ``OPENAI_API_KEY``, and the gateway when only ``HUD_API_KEY`` is set.
Keys come from ``api_key``, ``api_key_env`` (a variable name) or the environment /
``~/.hud/.env``; a passed ``api_key`` is masked in the recorded parameters.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hud.graders.base import Grader
from hud.graders.scores import SubScore
from hud.transport.sdk_http import http_client

__all__ = ["LLMJudgeGrader", "parse_verdict"]

DEFAULT_MODEL = "claude-haiku-4-5"
SYSTEM = (
    "You are a strict, impartial grader. Decide whether the response satisfies the given "
    "criterion. Judge only that criterion."
)
TEMPLATE = """Question or task:
{question}

Response to evaluate:
{answer}

Criterion:
{criterion}

Does the response meet the criterion? Reply with only a JSON object:
{{"criterion_status": "MET" or "UNMET", "explanation": "<one or two sentences>"}}"""

_UNMET = re.compile(r"\bUN[\s_-]?MET\b|\bNOT[\s_-]+MET\b")
_MET = re.compile(r"\bMET\b")


def parse_verdict(text: str) -> tuple[bool, str, bool]:
    """``(met, explanation, parsed)`` from a judge reply; unparseable replies count as UNMET."""
    body = text or ""
    for match in re.finditer(r"\{.*?\}", body, re.DOTALL):
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            status = str(obj.get("criterion_status") or obj.get("status") or "").strip().upper()
            explanation = str(obj.get("explanation") or obj.get("reason") or "")
            if status in ("MET", "UNMET"):
                return status == "MET", explanation, True
    upper = body.upper()
    if _UNMET.search(upper):
        return False, body.strip(), True
    if _MET.search(upper):
        return True, body.strip(), True
    return False, body.strip(), False


def _criteria(criteria: Any) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for item in criteria or []:
        if isinstance(item, str):
            out.append((item, 1.0))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            out.append((str(item[0]), float(item[1])))
        elif isinstance(item, dict) and "requirement" in item:
            out.append((str(item["requirement"]), float(item.get("weight", 1.0))))
        else:
            raise ValueError(f"criterion must be a string or (text, weight), got {item!r}")
    return out


def weighted_value(verdicts: list[tuple[float, float]]) -> float:
    """Score from ``[(value, weight), ...]`` (sdk.md §9), clamped to [0, 1]."""
    positive = sum(w for _, w in verdicts if w > 0)
    total = sum(v * w for v, w in verdicts)
    if positive > 0:
        value = total / positive
    elif verdicts and all(w < 0 for _, w in verdicts):
        value = 1 + total / sum(abs(w) for _, w in verdicts)
    else:
        value = 0.0
    return min(max(value, 0.0), 1.0)


@dataclass
class JudgeRoute:
    provider: str  # "anthropic" | "openai"
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    headers: dict[str, str] | None = None


def resolve_route(
    model: str,
    provider: str | None,
    base_url: str | None,
    api_key: str | None,
    api_key_env: str | None,
) -> JudgeRoute:
    """Where judge calls go; raises `MissingKeyError` (one line) when no key is found."""
    from hud.clients.model_calls import MissingKeyError
    from hud.settings import get_setting

    def key(default_env: str | None) -> str | None:
        if api_key:
            return api_key
        env = api_key_env or default_env
        return (get_setting(env) or None) if env else None

    choice = (provider or "").lower().replace("-", "_") or None
    low = model.lower()
    if choice is None:
        if base_url:
            choice = "openai_compatible"
        elif low.startswith("claude") and key("ANTHROPIC_API_KEY"):
            choice = "anthropic"
        elif re.match(r"(gpt-|o\d)", low) and key("OPENAI_API_KEY"):
            choice = "openai"
        elif get_setting("HUD_API_KEY"):
            choice = "gateway"
        else:
            raise MissingKeyError(
                "ANTHROPIC_API_KEY" if low.startswith("claude") else "OPENAI_API_KEY"
            )
    if choice in ("anthropic", "claude"):
        found = key("ANTHROPIC_API_KEY")
        if not found:
            raise MissingKeyError(api_key_env or "ANTHROPIC_API_KEY")
        return JudgeRoute("anthropic", found, base_url)
    if choice == "gateway":
        hud_key = get_setting("HUD_API_KEY")
        if not hud_key:
            raise MissingKeyError("HUD_API_KEY")
        gateway = (get_setting("HUD_GATEWAY_URL") or "").rstrip("/")
        return JudgeRoute("openai", hud_key, base_url or gateway)
    if choice in ("openai", "openai_compatible"):
        host = urlsplit(base_url).hostname if base_url else None
        custom = base_url is not None and not (host or "").endswith("openai.com")
        found = key(None if custom else "OPENAI_API_KEY")
        if not found and not custom:
            raise MissingKeyError(api_key_env or "OPENAI_API_KEY")
        return JudgeRoute("openai", found or "EMPTY", base_url)
    raise ValueError(f"unknown judge provider {provider!r}: use anthropic, openai or gateway")


class LLMJudgeGrader(Grader):
    """Grades an answer against natural-language criteria with an LLM."""

    name = "LLMJudgeGrader"

    @classmethod
    async def grade(cls, weight: float, name: str | None = None, **kwargs: Any) -> SubScore:
        score = await super().grade(weight, name, **kwargs)
        params = (score.info or {}).get("_parameters")
        if isinstance(params, dict) and params.get("api_key"):
            params["api_key"] = "***"
        return score

    @classmethod
    async def compute_score(
        cls,
        answer: str | Any = "",
        criteria: list[str | tuple[str, float]] | None = None,
        question: str = "",
        model: str = DEFAULT_MODEL,
        *,
        provider: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        max_tokens: int = 1024,
        max_retries: int = 3,
        retry_base_delay: float = 1.0,
        timeout: float = 120.0,
        **kwargs: Any,
    ) -> SubScore:
        """One MET/UNMET verdict per criterion (in parallel), combined by weight."""
        items = _criteria(criteria)
        if not items:
            return SubScore(name=cls.name, value=0.0, info={"error": "no criteria given"})
        route = resolve_route(model, provider, base_url, api_key, api_key_env)
        text = answer if isinstance(answer, str) else json.dumps(answer, default=str)
        client = _client(route, timeout)
        try:
            replies = await asyncio.gather(
                *(
                    _ask(
                        client,
                        route,
                        model,
                        max_tokens,
                        TEMPLATE.format(
                            question=question or "(not given)", answer=text, criterion=criterion
                        ),
                        max_retries,
                        retry_base_delay,
                    )
                    for criterion, _ in items
                )
            )
        finally:
            await _close(client)
        children = []
        verdicts: list[tuple[float, float]] = []
        for (criterion, weight), reply in zip(items, replies, strict=True):
            met, explanation, parsed = parse_verdict(reply)
            value = 1.0 if met else 0.0
            verdicts.append((value, weight))
            info: dict[str, Any] = {"status": "MET" if met else "UNMET", "reason": explanation}
            if not parsed:
                info["unparsed"] = True
            children.append(SubScore(name=criterion, value=value, weight=weight, info=info))
        return SubScore(
            name=cls.name,
            value=weighted_value(verdicts),
            children=children,
            info={"model": model, "provider": route.provider},
        )


def _client(route: JudgeRoute, timeout: float) -> Any:
    if route.provider == "anthropic":
        import anthropic

        return anthropic.AsyncAnthropic(
            api_key=route.api_key,
            base_url=route.base_url,
            max_retries=0,
            timeout=timeout,
            http_client=http_client(anthropic, timeout=timeout),
        )
    import openai

    return openai.AsyncOpenAI(
        api_key=route.api_key,
        base_url=route.base_url,
        max_retries=0,
        timeout=timeout,
        http_client=http_client(openai, timeout=timeout),
    )


async def _ask(
    client: Any,
    route: JudgeRoute,
    model: str,
    max_tokens: int,
    prompt: str,
    retries: int,
    base_delay: float,
) -> str:
    from hud.clients.model_calls import ModelCallError, RetryPolicy, call_with_retries

    async def once() -> str:
        if route.provider == "anthropic":
            message = await client.messages.create(
                model=model,
                max_tokens=max_tokens,
                system=SYSTEM,
                messages=[{"role": "user", "content": prompt}],
            )
            return "".join(
                getattr(b, "text", "") for b in message.content if getattr(b, "type", "") == "text"
            )
        response = await client.chat.completions.create(
            model=model,
            max_tokens=max_tokens,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        )
        return response.choices[0].message.content or ""

    secrets = (route.api_key,) if route.api_key else ()
    try:
        return await call_with_retries(
            once,
            RetryPolicy(retries=max(int(retries), 0), base_delay=base_delay),
            label=f"judge ({model})",
            secrets=secrets,
        )
    except ModelCallError as exc:
        raise RuntimeError(f"LLM judge call failed: {exc.message}") from None


async def _close(client: Any) -> None:
    closer = getattr(client, "close", None)
    if closer is not None:
        try:
            await closer()
        except Exception:
            pass
