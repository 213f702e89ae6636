"""Trivial rollouts in containers: our `DockerRuntime` vs the official package's.

Both packages run ``_docker_driver.py`` (N rows of ``bench/docker_env``'s ``shout``, a
fixed-answer agent, concurrency C). Each side runs its own stack: its ``DockerRuntime`` and an
image serving the same env file with its own ``hud`` (ours: a wheel of this tree; official:
``hud==0.6.21``), both built on the same local base (debootstrap, cached by tag; see
tests/docker/images.py). A third row runs the official runtime on our image, isolating the
runtimes' own overhead. Target: ours >= 2x the official stack's throughput (we also start
containers ahead of need).

Usage: ``python bench/docker_bench.py [-n 50] [-c 4]``. Needs a Docker daemon and network
access to the package index for the official image's first build.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import BENCH, ROOT, Figure, ratio, sides, table

sys.path.insert(0, str(ROOT / "tests" / "docker"))
DRIVER = BENCH / "_docker_driver.py"
TARGET = 2.0


ENV_DIR = BENCH / "docker_env"
OFFICIAL_PIN = "hud==0.6.21 typer==0.28.0"


def images_for_bench() -> tuple[str, str]:
    """(our image, official image) serving ``bench/docker_env/env.py`` (built once, cached)."""
    import hashlib
    import shutil
    import tempfile
    from pathlib import Path

    import images

    from hud.eval.runtimes.docker import build_image, image_exists

    env_text = (ENV_DIR / "env.py").read_text()
    cmd = 'CMD ["hud", "serve", "env.py", "--host", "0.0.0.0", "--port", "8765"]'
    recipes = {
        "ours": (images.hud_image(), ""),
        "official": (images.python_image(), f"RUN pip install -q {OFFICIAL_PIN}\n"),
    }
    tags = []
    for name, (base, extra) in recipes.items():
        dockerfile = f"FROM {base}\n{extra}WORKDIR /app\nCOPY env.py /app/env.py\n{cmd}\n"
        digest = hashlib.sha256((dockerfile + env_text).encode()).hexdigest()[:12]
        tag = f"hud-bench/{name}-env:{digest}"
        if not image_exists(tag):
            with tempfile.TemporaryDirectory() as ctx:
                shutil.copy(ENV_DIR / "env.py", Path(ctx) / "env.py")
                (Path(ctx) / "Dockerfile").write_text(dockerfile)
                build_image(ctx, tag)
        tags.append(tag)
    return tags[0], tags[1]


def measure(side, image: str, n: int, concurrency: int) -> dict:  # type: ignore[no-untyped-def]
    proc = subprocess.run(
        side.argv(str(DRIVER), image, str(n), str(concurrency)),
        env=side.env(),
        cwd=str(BENCH),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{side.name} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="rollouts per run")
    parser.add_argument("-c", "--concurrency", type=int, default=4)
    ns = parser.parse_args(argv)
    ours, official = sides()
    our_image, official_image = images_for_bench()
    runs = [
        ("ours (our runtime, our image)", measure(ours, our_image, ns.n, ns.concurrency)),
        (
            "official (its runtime, its image)",
            measure(official, official_image, ns.n, ns.concurrency),
        ),
        ("official runtime, our image", measure(official, our_image, ns.n, ns.concurrency)),
    ]
    rows = [
        [label, r["n"], round(r["elapsed_s"], 2), round(r["rollouts_per_s"], 2), r["mean_reward"]]
        for label, r in runs
    ]
    print(table(("DockerRuntime", "rollouts", "elapsed s", "rollouts/s", "mean reward"), rows))
    mine, theirs, same_image = (r for _, r in runs)
    rel = ratio(mine["rollouts_per_s"], theirs["rollouts_per_s"])
    rel_same = ratio(mine["rollouts_per_s"], same_image["rollouts_per_s"])
    print(f"\nours/official throughput: {rel}x (target >= {TARGET}x); same image: {rel_same}x")
    return [
        Figure(
            f"docker rollouts/s (n={ns.n}, c={ns.concurrency})",
            round(mine["rollouts_per_s"], 2),
            round(theirs["rollouts_per_s"], 2),
            "rollouts/s",
            f">= {TARGET}x",
            mine["rollouts_per_s"] >= TARGET * theirs["rollouts_per_s"],
        ),
        Figure(
            "docker rollouts/s, both on our image",
            round(mine["rollouts_per_s"], 2),
            round(same_image["rollouts_per_s"], 2),
            "rollouts/s",
            "-",
            None,
        ),
    ]


if __name__ == "__main__":
    main()
