"""The environment every benchmark serves, with both our package and the official one.

Capabilities ``sink`` and ``source`` are published when ``HUD_BENCH_SINK_PORT`` /
``HUD_BENCH_SOURCE_PORT`` are set (raw TCP servers started by ``bench/_sink.py``); a workspace
(``shell``) when ``HUD_BENCH_WORKSPACE`` is set (its root in the server's scratch directory).
"""

from __future__ import annotations

import os

from hud import Environment
from hud.environment import Capability

env = Environment("bench")

for _name, _var in (("sink", "HUD_BENCH_SINK_PORT"), ("source", "HUD_BENCH_SOURCE_PORT")):
    _port = os.environ.get(_var)
    if _port:
        env.add_capability(
            Capability(name=_name, protocol="tcp/1", url=f"tcp://127.0.0.1:{_port}", params={})
        )


if os.environ.get("HUD_BENCH_WORKSPACE"):  # bench/ssh_roundtrip.py: a `shell` workspace
    import tempfile

    env.workspace(tempfile.mkdtemp(prefix="ws-", dir=os.getcwd()))


@env.template(description="Repeat a word")
async def echo(word: str = "hello"):
    """Prompt for a word; score 1.0 if the answer repeats it."""
    answer = yield f"Repeat the word {word!r}."
    yield 1.0 if answer == word else 0.0
