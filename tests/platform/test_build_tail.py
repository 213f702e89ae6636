"""The early manifest capture's reading of a Dockerfile's last steps (`dockerfile_tail`) against
what the Docker daemon's legacy builder really does: for each Dockerfile the steps it prints are
the ones read, and the entrypoint and command computed from the image of the last file-changing
step are those of the built image; the tails it does not handle are refused."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterator

import pytest

from hud.platform.services.builds import dockerfile_tail
from tests.platform.deploy_helpers import python_base

LABEL_KEY = "io.hud.test-build-tail"
RUN_ID = uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    """The offline Debian base (its CMD is ``["bash"]``); images built here are removed."""
    from hud.eval.runtimes.docker import docker_client

    python_base()
    yield "debian:bookworm-slim"
    client = docker_client()
    for image in client.images.list(filters={"label": f"{LABEL_KEY}={RUN_ID}"}):
        try:
            client.images.remove(image.id, force=True)
        except Exception:
            pass


def _build(dockerfile: str) -> tuple[list[str], list[str], dict]:
    """Build ``dockerfile`` (no context, our label added as the platform adds its own); (the
    steps' texts as printed, each step's image id, the built image's Config)."""
    from hud.eval.runtimes.docker import docker_client

    api = docker_client().api
    texts: list[str] = []
    ids: list[str] = []
    last = ""
    out: list[str] = []
    for chunk in api.build(
        fileobj=io.BytesIO(dockerfile.encode()),
        rm=True,
        forcerm=True,
        nocache=True,
        decode=True,
        labels={LABEL_KEY: RUN_ID},
    ):
        if "error" in chunk:
            raise AssertionError(f"{chunk['error']}\n{''.join(out)}")
        out.append(str(chunk.get("stream", "")))
        for line in str(chunk.get("stream", "")).splitlines():
            step = re.match(r"^Step (\d+)/(\d+) : (.*)$", line)
            if step:
                if texts:
                    ids.append(last)
                texts.append(step.group(3))
            elif m := re.match(r"^ ---> ([0-9a-f]{12,64})$", line):
                last = m.group(1)
    ids.append(last)
    return texts, ids, api.inspect_image(ids[-1])["Config"]


def _final(config: dict) -> tuple[list[str] | None, list[str] | None]:
    return (config.get("Entrypoint") or None, config.get("Cmd") or None)


HANDLED = {
    "exec CMD after EXPOSE": 'RUN true\nEXPOSE 8765\nCMD ["hud", "serve", "--port", "8765"]\n',
    "shell CMD": "RUN true\nCMD echo  two  spaces 'and quotes' $HOME\n",
    "ENTRYPOINT then CMD": (
        'COPY --from={base} /etc/hostname /x\nENTRYPOINT ["a", "b"]\nCMD ["c"]\n'
    ),
    "ENTRYPOINT clears the inherited CMD": "RUN true\nENTRYPOINT exec sleep 1\n",
    "CMD earlier in the stage survives ENTRYPOINT": 'CMD ["kept"]\nRUN true\nENTRYPOINT ["e"]\n',
    "CMD then ENTRYPOINT, both after": 'RUN true\nCMD ["kept"]\nENTRYPOINT ["e"]\nLABEL a=b\n',
    "SHELL of the stage for a shell form": 'SHELL ["/bin/bash", "-c"]\nRUN true\nCMD echo x\n',
    "a stage's CMD is not set in the stage FROM it": (
        'CMD ["x"]\nFROM {base} AS one\nCMD ["inherited"]\nFROM one\nRUN true\n'
        'ENTRYPOINT ["e"]\nSTOPSIGNAL 9\n'
    ),
    "continued lines, comments, lower case": (
        'run true \\\n    && true\n# a comment\n\ncmd ["x", \\\n  # inside\n     "y"]\n'
        "expose 1 \\\n 2\n"
    ),
    "invalid JSON is a shell form": "RUN true\nCMD [not json\n",
}


@pytest.mark.parametrize("body", list(HANDLED.values()), ids=list(HANDLED))
def test_tail_is_what_the_builder_does(base: str, body: str) -> None:
    text = f"FROM {base}\n" + body.format(base=base)
    tail = dockerfile_tail(text)
    if "[not json" in body:
        assert tail is None  # docker reads a shell form; refused all the same (conservative)
        return
    assert tail is not None
    printed, ids, config = _build(text)
    # what the daemon prints is what was read (the platform checks it as the build runs)
    assert printed[:-1] == list(tail.steps), printed
    assert printed[-1] == f"LABEL {LABEL_KEY}={RUN_ID}"
    from hud.eval.runtimes.docker import docker_client

    anchor = docker_client().api.inspect_image(ids[tail.anchor - 1])["Config"]
    assert tail.launch(anchor) == _final(config), (tail, anchor, config)


REFUSED = {
    "ENV after the last RUN": 'RUN true\nENV A=1\nCMD ["x"]\n',
    "USER after": "RUN true\nUSER nobody\n",
    "WORKDIR after": "RUN true\nWORKDIR /tmp\n",
    "ARG after": "RUN true\nARG X\n",
    "SHELL after": 'RUN true\nSHELL ["/bin/bash", "-c"]\nCMD echo x\n',
    "ONBUILD after": "RUN true\nONBUILD RUN true\n",
    "HEALTHCHECK after": "RUN true\nHEALTHCHECK CMD true\n",
    "VOLUME after": "RUN true\nVOLUME /data\n",
    "empty exec form": "RUN true\nCMD []\n",
    "a flag": "RUN true\nCMD --x y\n",
    "non-string array": "RUN true\nCMD [1]\n",
    "nothing after the last RUN": "RUN true\n",
    "no file-changing step in the last stage": "RUN true\nFROM {base}\nCMD x\n",
}


@pytest.mark.parametrize("body", list(REFUSED.values()), ids=list(REFUSED))
def test_tails_not_handled_are_refused(body: str) -> None:
    assert dockerfile_tail("FROM debian:bookworm-slim\n" + body.format(base="debian")) is None


def test_escape_directive_is_refused() -> None:
    assert dockerfile_tail("# escape=`\nFROM x\nRUN true\nCMD y\n") is None
    plain = dockerfile_tail("# syntax=docker/dockerfile:1\nFROM x\nRUN true\nCMD y\n")
    assert plain is not None and plain.commands == (("cmd", "y"),)
    assert json.dumps(plain.steps) == json.dumps(["FROM x", "RUN true", "CMD y"])
