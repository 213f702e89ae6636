"""Interop environment: served by both our server and the official one.

Uses only the API shared by both packages (``Environment``, ``Answer``, graders, ``Capability``).
Module-level ``EVENTS`` records generator lifecycle so tests can observe cancel/park/teardown
over the wire (the ``events`` task returns it).
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any, Literal

from pydantic import BaseModel

from hud import Environment
from hud.capabilities import Capability
from hud.environment import (
    Answer,
    DataFileArg,
    DataFileRef,
    DataFilesArg,
    GradingArg,
    PromptArg,
)
from hud.graders import EvaluationResult, SubScore

env = Environment(name="interop", version="1.2.3")

EVENTS: list[str] = []
_ECHO: dict[str, Any] = {}


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@env.initialize
async def _start_echo() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    _ECHO["server"] = server
    port = server.sockets[0].getsockname()[1]
    env.add_capability(Capability(name="echo", protocol="echo/1", url=f"tcp://127.0.0.1:{port}"))
    # A capability whose backend refuses connections (port 1 is never listening).
    env.add_capability(Capability(name="dead", protocol="dead/1", url="tcp://127.0.0.1:1"))
    # A capability without host:port.
    env.add_capability(Capability(name="nohost", protocol="nohost/1", url="unix:///tmp/nothing"))
    env.add_capability(Capability.mcp(url="http://127.0.0.1/mcp"))


@env.shutdown
async def _stop_echo() -> None:
    server = _ECHO.pop("server", None)
    if server is not None:
        server.close()


@env.template(description="Greet someone")
async def greet(name: str, punctuation: str = "!"):
    answer = yield f"Say hello to {name}{punctuation}"
    yield 1.0 if answer == f"hello {name}" else 0.0


@env.template(description="Add two integers", returns=int)
async def add(a: int, b: int):
    answer: Answer[int] = yield f"What is {a} + {b}?"
    ok = answer.content == a + b and isinstance(answer.content, int)
    yield 1.0 if ok else 0.0


@env.template(description="Echo what the answer parsed to", returns=dict)
async def parsed():
    answer: Answer[dict] = yield "Send a JSON object"
    yield {"score": 1.0, "content": answer.content, "raw": answer.raw}


@env.template(description="An EvaluationResult grade")
async def evalres():
    yield "evaluate me"
    yield EvaluationResult(
        reward=0.25,
        content="c",
        subscores=[SubScore(name="s", value=0.25, weight=1.0)],
    )


@env.template(description="A dict grade with extra keys")
async def dictgrade():
    yield "dict me"
    yield {"score": 0.5, "info": {"a": 1}, "custom": "x"}


@env.template(description="A SubScore grade")
async def subscore():
    yield "subscore me"
    yield SubScore(name="s", value=0.75)


@env.template(description="A bool grade")
async def boolgrade():
    yield "bool me"
    yield True


@env.template(description="A string grade (invalid)")
async def strgrade():
    yield "string me"
    yield "nope"


@env.template(description="A dict grade without a score")
async def noscore():
    yield "no score"
    yield {"foo": 1}


@env.template(description="No second yield")
async def noreward():
    yield "no reward"


@env.template(description="A prompt frame with bindings")
async def framed():
    yield {
        "prompt": [{"role": "user", "content": "hi"}],
        "bindings": {"echo": {"token": "t"}},
        "extra": 5,
    }


@env.template(description="A dict prompt without a prompt key")
async def question():
    answer = yield {"question": "x"}
    yield 1.0 if answer == "y" else 0.0


@env.template(description="Returns without yielding")
async def noyield():
    if False:
        yield "never"


@env.template(description="KeyError before the first yield")
async def keyerr():
    raise KeyError("boom")
    yield "never"


@env.template(description="ValueError before the first yield")
async def crash():
    raise ValueError("kaput")
    yield "never"


@env.template(description="Records its lifecycle in EVENTS")
async def track(tag: str, delay: float = 0.0):
    EVENTS.append(f"start:{tag}")
    try:
        answer = yield f"track {tag}"
        EVENTS.append(f"answer:{tag}:{answer}")
        if delay:
            await asyncio.sleep(delay)
        yield 1.0 if answer == tag else 0.0
    finally:
        EVENTS.append(f"close:{tag}")


@env.template(description="The lifecycle events so far")
async def events():
    yield {"prompt": "events", "events": list(EVENTS)}


@env.template(description="Schema shapes")
async def shapes(
    text: str, count: int = 3, ratio: float = 0.5, flag: bool = False, tags=None, **extra: Any
):
    yield f"{text}:{count}:{ratio}:{flag}:{tags}:{sorted(extra)}"
    yield 1.0


class Point(BaseModel):
    x: int
    y: int = 0


@env.template(description="Typed args", input=Point, returns=list[int])
async def typed(
    point: Point,
    mode: Literal["upper", "lower"] = "lower",
    maybe: int | None = None,
    items: list[int] | None = None,
    prompt: PromptArg = "",
    data: DataFileArg[str] | None = None,
    files: DataFilesArg[str] | None = None,
    rubric: GradingArg[str] | None = None,
    when: datetime.date | None = None,
    ref: DataFileRef | None = None,
    anything: Any = None,
    untyped=None,
    *rest: Any,
    **kw: Any,
):
    values = (point, mode, maybe, items, prompt, data, files, rubric, when, ref, anything, untyped)
    answer: Answer[list[int]] = yield {
        "prompt": f"typed {mode}",
        "seen": [type(v).__name__ for v in values],
        "point": point,
        "ref": ref,
        "kw": kw,
    }
    yield {"score": 1.0 if answer.content == [point.x, point.y] else 0.0, "content": answer.content}
