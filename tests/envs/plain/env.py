"""A capability-free env for driving with the official `hud eval` (its tool agents open every
capability they know, so this one publishes none)."""

from __future__ import annotations

from hud import Environment

env = Environment(name="plain")


@env.template(description="Add two numbers")
async def add(a: int, b: int):
    answer = yield f"What is {a} + {b}? Reply with the number only."
    yield 1.0 if str(answer).strip() == str(a + b) else 0.0
