"""A tiny environment served from an image in the container tests."""

import asyncio
import os

from hud import Environment

env = Environment(name="boxenv")


@env.template(solution=lambda run: run.args["text"].upper())
async def shout(text: str):
    answer = yield f"Shout this: {text}"
    yield 1.0 if answer == text.upper() else 0.0


async def _slow(run):
    await asyncio.sleep(float(run.args.get("seconds", 60)))
    return "late"


@env.template(solution=_slow)
async def slow(seconds: float = 60):
    yield "wait for it"
    yield 1.0


@env.template(solution=lambda run: "")
async def where():
    """Reports the hostname it runs on (a container id inside Docker)."""
    answer = yield "anything"
    yield {"score": 1.0, "info": {"hostname": os.uname().nodename, "answer": answer}}
