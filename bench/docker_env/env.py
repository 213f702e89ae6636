"""The docker bench environment: one answer-only template, valid for both packages."""

from hud import Environment

env = Environment(name="boxenv")


@env.template()
async def shout(text: str):
    answer = yield f"Shout this: {text}"
    yield 1.0 if answer == text.upper() else 0.0
