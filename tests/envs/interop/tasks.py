"""Task rows minted from the interop env's templates (slug parity between implementations)."""

from env import add, greet, shapes

from hud import Task

zeta = greet(name="Ada")
alpha = [add(a=2, b=3), add(2, 40), greet("Zoë ✓", punctuation="?")]
middle = shapes(text="t", tags=["x", {"k": 1.5}], ratio=1.0, mood="ok")
explicit = Task(env="interop", id="greet", args={"name": "Bob"}, slug="greet-bob")
plain = Task(env="interop", id="evalres")
