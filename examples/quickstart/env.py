"""The quickstart environment: three small templates with reference solutions.

Try it:

    hud eval examples/quickstart/tasks.py oracle --all   # reference answers: mean reward 1.0
    hud eval examples/quickstart/tasks.py nop --all      # empty answers: mean reward 0.0
    hud serve examples/quickstart/env.py                 # serve it for any agent
"""

from hud import Environment

env = Environment(name="quickstart")


def _count(run):
    """The reference answer of `count`: how often the letter occurs, ignoring case."""
    return str(run.args["sentence"].lower().count(run.args["letter"].lower()))


@env.template(solution=_count)
async def count(sentence: str, letter: str):
    """Count how often a letter appears in a sentence, ignoring case."""
    answer = yield f"How many times does '{letter}' appear in: '{sentence}'? Answer with a number."
    expected = sentence.lower().count(letter.lower())
    yield 1.0 if str(answer).strip() == str(expected) else 0.0


@env.template(solution=lambda run: str(run.args["a"] + run.args["b"]))
async def add(a: int, b: int):
    """Add two integers."""
    answer = yield f"What is {a} + {b}? Answer with a number."
    try:
        correct = int(str(answer).strip()) == a + b
    except ValueError:
        correct = False
    yield 1.0 if correct else 0.0


@env.template(solution=lambda run: run.args["word"][::-1])
async def reverse(word: str):
    """Spell a word backwards; half credit when only the case is off."""
    answer = str((yield f"Write '{word}' backwards. Answer with the reversed word only.")).strip()
    if answer == word[::-1]:
        yield 1.0
    elif answer and answer.lower() == word[::-1].lower():
        yield 0.5
    else:
        yield 0.0


if __name__ == "__main__":
    import asyncio

    asyncio.run(env.serve())
