"""Local base images for the container tests and benches (no image registry is reachable).

* `BASE` (tagged `debian:bookworm-slim` too): ``debootstrap --variant=minbase bookworm`` plus
  python3, python3-venv, procps and CA certificates (the host's bundle, so a container reaches the
  package index through this machine's TLS proxy), imported with ``docker import``.
* `python_image()` (tagged `python:3.11-slim` too): BASE plus a virtualenv at ``/usr/local`` (so
  ``python``/``pip`` are on PATH as in the official image) holding ``hud``'s dependencies, not
  ``hud`` itself: Dockerfiles built on it install ``hud`` from a wheel of this source tree.
* `hud_image()`: the python image plus ``hud`` from this source tree.

Every image is cached by tag (the tag carries a hash of what went into it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from hud.eval.runtimes.docker import build_image, docker_client, image_exists
from hud.eval.runtimes.wheel import _requirements, build_wheel

BASE_PACKAGES = ("python3", "python3-venv", "procps", "ca-certificates")
BASE = "hud-test/base:bookworm-" + hashlib.sha256(",".join(BASE_PACKAGES).encode()).hexdigest()[:8]
BASE_ALIASES = ("debian:bookworm-slim", "debian:bookworm")
PYTHON_ALIASES = ("python:3.11-slim", "python:3.11")
MIRROR = os.environ.get("HUD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def _tag(ref: str, aliases: tuple[str, ...]) -> None:
    image = docker_client().images.get(ref)
    for alias in aliases:
        repo, _, tag = alias.partition(":")
        image.tag(repo, tag or "latest")


def base_image() -> str:
    """BASE, built with debootstrap on first use (~1 min), tagged under `BASE_ALIASES`."""
    if not image_exists(BASE):
        if not shutil.which("debootstrap"):
            raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
        root = Path(tempfile.mkdtemp(prefix="hud-debootstrap-"))
        try:
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    "bookworm",
                    str(root),
                    MIRROR,
                ],
                check=True,
                capture_output=True,
            )
            if HOST_CA.exists():
                shutil.copy(HOST_CA, root / "etc/ssl/certs/ca-certificates.crt")
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(root / junk, ignore_errors=True)
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(
                [
                    "docker",
                    "import",
                    "--change",
                    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--change",
                    'CMD ["bash"]',
                    "-",
                    BASE,
                ],
                stdin=tar.stdout,
                check=True,
                capture_output=True,
            )
            tar.wait()
        finally:
            shutil.rmtree(root, ignore_errors=True)
    _tag(BASE, BASE_ALIASES)
    return BASE


PYTHON_DOCKERFILE = """\
FROM {base}
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN python3 -m venv /usr/local && /usr/local/bin/pip install -q --upgrade pip
COPY requirements.txt /tmp/requirements.txt
RUN pip install -q -r /tmp/requirements.txt hatchling setuptools wheel
"""


def python_image() -> str:
    """The `python:3.11-slim` stand-in with hud's dependencies (~1 min on first use)."""
    base = base_image()
    reqs, _ = _requirements()
    text = "\n".join(reqs) + "\n"
    digest = hashlib.sha256((base + PYTHON_DOCKERFILE + text).encode()).hexdigest()[:12]
    ref = f"hud-test/python:{digest}"
    if not image_exists(ref):
        with tempfile.TemporaryDirectory() as ctx:
            Path(ctx, "Dockerfile").write_text(PYTHON_DOCKERFILE.format(base=base))
            Path(ctx, "requirements.txt").write_text(text)
            build_image(ctx, ref)
    _tag(ref, PYTHON_ALIASES)
    return ref


HUD_DOCKERFILE = """\
FROM {python}
COPY {wheel} /tmp/{wheel}
RUN pip install -q --no-deps /tmp/{wheel} && rm /tmp/{wheel}
"""


def hud_image() -> str:
    """The python image plus hud from this source tree (rebuilt when the source changes)."""
    python = python_image()
    with tempfile.TemporaryDirectory() as ctx:
        wheel = build_wheel(ctx)
        digest = hashlib.sha256(python.encode() + wheel.read_bytes()).hexdigest()[:12]
        ref = f"hud-test/hud:{digest}"
        if not image_exists(ref):
            Path(ctx, "Dockerfile").write_text(
                HUD_DOCKERFILE.format(python=python, wheel=wheel.name)
            )
            build_image(ctx, ref)
    return ref
