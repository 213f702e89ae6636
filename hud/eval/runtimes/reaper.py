"""A watchdog that removes a process's containers as soon as that process dies, however.

``python -m hud.eval.runtimes.reaper OWNER`` runs in its own session beside the process that
starts containers (`hud.eval.runtimes.docker` spawns it with the first container). Its stdin is
the read end of a pipe whose only writer is that process: the pipe reaches EOF when the process
exits, even by SIGKILL. The reaper then removes every container and network labelled with
``OWNER`` and exits. It imports nothing heavy until then.

``python -m hud.eval.runtimes.reaper --many`` watches the workers a platform's zygote forks
(`hud.platform.workers.zygote`), one line each on its stdin: ``+OWNER`` once the worker
started, ``=OWNER`` once it exited (it removed its containers itself), ``-OWNER`` once it was
killed (its containers are removed now). At the end of its stdin (the zygote is gone, and its
workers die with it) the containers of every worker not known to have exited are removed.
"""

from __future__ import annotations

import os
import signal
import sys


def wait_for_eof(fd: int) -> None:
    """Block until every writer of ``fd`` is gone."""
    while True:
        try:
            if not os.read(fd, 4096):
                return
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        except OSError:
            return


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m hud.eval.runtimes.reaper OWNER | --many", file=sys.stderr)
        return 2
    # A Ctrl-C or a SIGTERM meant for the owner's process group must not stop the cleanup.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    if args[0] == "--many":
        watch_many(0)
        return 0
    wait_for_eof(0)
    remove_owned(args[0])
    return 0


def remove_owned(owner: str) -> None:
    """Remove the containers (then networks) labelled with ``owner``."""
    import time

    from hud.eval.runtimes.docker import reap

    for pause in (1.0, 2.0, 0.0):  # a container the daemon was still creating shows up later
        reap(owner=owner)
        time.sleep(pause)


def watch_many(fd: int) -> None:
    """Follow the ``+``/``=``/``-`` lines on ``fd`` until its end (the module's docstring)."""
    import threading

    live: set[str] = set()
    removals: list[threading.Thread] = []

    def remove(owner: str) -> None:
        thread = threading.Thread(target=remove_owned, args=(owner,), daemon=True)
        thread.start()
        removals.append(thread)

    with os.fdopen(fd, "rb", closefd=False) as stream:
        for raw in stream:
            line = raw.decode(errors="replace").strip()
            op, owner = line[:1], line[1:]
            if not owner:
                continue
            if op == "+":
                live.add(owner)
            elif op == "=":
                live.discard(owner)
            elif op == "-":
                live.discard(owner)
                remove(owner)
    for owner in live:
        remove(owner)
    for thread in removals:
        thread.join()


if __name__ == "__main__":
    raise SystemExit(main())
