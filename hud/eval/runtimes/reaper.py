"""A watchdog that removes a process's containers as soon as that process dies, however.

``python -m hud.eval.runtimes.reaper OWNER`` runs in its own session beside the process that
starts containers (`hud.eval.runtimes.docker` spawns it with the first container). Its stdin is
the read end of a pipe whose only writer is that process: the pipe reaches EOF when the process
exits, even by SIGKILL. The reaper then removes every container and network labelled with
``OWNER`` and exits. It imports nothing heavy until then.
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
        print("usage: python -m hud.eval.runtimes.reaper OWNER", file=sys.stderr)
        return 2
    owner = args[0]
    # A Ctrl-C or a SIGTERM meant for the owner's process group must not stop the cleanup.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    wait_for_eof(0)
    import time

    from hud.eval.runtimes.docker import reap

    for pause in (1.0, 2.0, 0.0):  # a container the daemon was still creating shows up later
        reap(owner=owner)
        time.sleep(pause)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
