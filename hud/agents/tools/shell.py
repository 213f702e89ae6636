"""`ShellOps`: shell and file operations over an opened ``ssh`` capability client.

The client is whatever ``await run.client.open("shell")`` returns: it must offer
``await run(command, *, timeout=None, cwd=None)`` returning an object with ``exit_code``,
``stdout``, ``stderr`` and ``timed_out``, and ``await write_file(path, data)``. Every command
runs in a fresh ``bash -lc`` on the environment side, so nothing (``cd``, variables) carries
over between calls.
"""

from __future__ import annotations

import asyncio
import posixpath
import shlex
from dataclasses import dataclass
from typing import Any

from hud.agents.tools.base import ToolError, ToolTimeoutError
from hud.clients.ssh_client import as_text

__all__ = [
    "GLOB_LIMIT",
    "GREP_LIMIT",
    "MAX_OUTPUT",
    "CommandOutput",
    "ShellOps",
    "format_command",
    "middle_cut",
]

#: Largest tool output handed back to the model (runtimes-agents.md §2.5).
MAX_OUTPUT = 10 * 1024 * 1024
#: Matching lines `grep` reports before it says how many it left out (G33).
GREP_LIMIT = 200
#: Longest matching line `grep` reports (longer lines are cut).
GREP_LINE_CHARS = 500
#: Paths `glob` reports before it says how many it left out.
GLOB_LIMIT = 500
#: Lines `read` returns by default.
READ_LIMIT = 2000
#: Seconds allowed beyond the tool timeout for the client to report the timeout itself.
TIMEOUT_GRACE = 10.0


def middle_cut(text: str, limit: int = MAX_OUTPUT) -> str:
    """``text`` with its middle replaced by ``[truncated]`` when longer than ``limit``."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return f"{text[:half]}\n[truncated]\n{text[-half:]}"


@dataclass
class CommandOutput:
    command: str
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False


def format_command(out: CommandOutput) -> str:
    """``$ <cmd>\\n<stdout>[\\nstderr:\\n<stderr>]\\n(exit N)``, cut to `MAX_OUTPUT`."""
    stdout = out.stdout[:-1] if out.stdout.endswith("\n") else out.stdout
    stderr = out.stderr[:-1] if out.stderr.endswith("\n") else out.stderr
    text = f"$ {out.command}\n{stdout}"
    if stderr:
        text += f"\nstderr:\n{stderr}"
    code = "timeout" if out.timed_out else out.exit_code
    text += f"\n(exit {code})"
    return middle_cut(text)


def _timeout_message(seconds: float) -> str:
    return f"command timed out after {seconds:g}s; retry with a shorter command"


class ShellOps:
    """Shell and file operations on one ``ssh`` capability (paths relative to its ``cwd``)."""

    def __init__(self, client: Any, *, cwd: str | None = None, name: str = "shell") -> None:
        self.client = client
        self.cwd = cwd
        self.name = name

    # -- basics ----------------------------------------------------------------------------
    def path(self, path: str | None) -> str:
        """``path`` made absolute against the capability's working directory."""
        text = str(path or "").strip() or "."
        if text.startswith("~") or posixpath.isabs(text) or not self.cwd:
            return text
        return posixpath.normpath(posixpath.join(self.cwd, text))

    async def run(
        self, command: str, *, timeout: float | None = None, cwd: str | None = None
    ) -> CommandOutput:
        """Run ``command``; a timeout raises `ToolTimeoutError`."""
        kwargs: dict[str, Any] = {"timeout": timeout}
        where = self.path(cwd) if cwd else self.cwd
        if where:
            kwargs["cwd"] = where
        call = self.client.run(command, **kwargs)
        try:
            if timeout:
                result = await asyncio.wait_for(call, timeout + TIMEOUT_GRACE)
            else:
                result = await call
        except TimeoutError:
            raise ToolTimeoutError(_timeout_message(timeout or 0)) from None
        out = CommandOutput(
            command=command,
            exit_code=getattr(result, "exit_code", None),
            stdout=as_text(getattr(result, "stdout", "")),
            stderr=as_text(getattr(result, "stderr", "")),
            timed_out=bool(getattr(result, "timed_out", False)),
        )
        if out.timed_out:
            raise ToolTimeoutError(_timeout_message(timeout or 0))
        return out

    async def bash(
        self, command: str, *, timeout: float | None = None, cwd: str | None = None
    ) -> tuple[str, CommandOutput]:
        if not isinstance(command, str) or not command.strip():
            raise ToolError("missing 'command': give the shell command to run")
        out = await self.run(command, timeout=timeout, cwd=cwd)
        return format_command(out), out

    # -- files -----------------------------------------------------------------------------
    async def read_text(self, path: str, *, timeout: float | None = None) -> str:
        target = self.path(path)
        q = shlex.quote(target)
        out = await self.run(
            f"if [ -d {q} ]; then echo 'is a directory' >&2; exit 21; fi; cat -- {q}",
            timeout=timeout,
        )
        if out.exit_code != 0:
            raise ToolError(f"cannot read {target}: {out.stderr.strip() or 'failed'}")
        return out.stdout

    async def read(
        self,
        path: str,
        *,
        offset: int | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> str:
        """Lines of a file numbered like ``cat -n`` (``offset`` is the 1-based first line)."""
        text = await self.read_text(path, timeout=timeout)
        lines = text.splitlines()
        start = max(int(offset or 1), 1)
        count = int(limit) if limit else READ_LIMIT
        chosen = lines[start - 1 : start - 1 + count]
        body = "\n".join(f"{n:6}\t{line}" for n, line in enumerate(chosen, start))
        rest = len(lines) - (start - 1 + len(chosen))
        if rest > 0:
            body += f"\n[{rest} more lines; read with offset={start + len(chosen)}]"
        if not lines:
            return "(empty file)"
        return middle_cut(body)

    async def write(self, path: str, content: str, *, timeout: float | None = None) -> str:
        target = self.path(path)
        parent = posixpath.dirname(target)
        if parent:
            out = await self.run(f"mkdir -p -- {shlex.quote(parent)}", timeout=timeout)
            if out.exit_code != 0:
                raise ToolError(f"cannot create {parent}: {out.stderr.strip()}")
        data = (content if isinstance(content, str) else str(content)).encode("utf-8")
        try:
            call = self.client.write_file(target, data)
            await (asyncio.wait_for(call, timeout + TIMEOUT_GRACE) if timeout else call)
        except TimeoutError:
            raise ToolTimeoutError(_timeout_message(timeout or 0)) from None
        except ConnectionError:
            raise
        except OSError as exc:  # the file could not be written (not a lost connection)
            raise ToolError(f"cannot write {target}: {exc}") from None
        return f"wrote {len(data)} bytes to {target}"

    async def edit(
        self,
        path: str,
        old: str,
        new: str,
        *,
        replace_all: bool = False,
        expected: int | None = None,
        timeout: float | None = None,
    ) -> str:
        if not isinstance(old, str) or old == "":
            raise ToolError("the text to replace is empty; use the write tool to create a file")
        if old == new:
            raise ToolError("the old and new text are the same")
        text = await self.read_text(path, timeout=timeout)
        count = text.count(old)
        target = self.path(path)
        if count == 0:
            raise ToolError(f"the text to replace was not found in {target}")
        if expected is not None and count != expected:
            raise ToolError(f"expected {expected} occurrences in {target}, found {count}")
        if count > 1 and not replace_all and expected is None:
            raise ToolError(
                f"the text to replace occurs {count} times in {target}; add surrounding "
                "context to make it unique, or replace all occurrences"
            )
        updated = text.replace(old, new) if (replace_all or expected) else text.replace(old, new, 1)
        await self.write(target, updated, timeout=timeout)
        done = count if (replace_all or expected) else 1
        return f"replaced {done} occurrence{'s' if done != 1 else ''} in {target}"

    async def insert(self, path: str, line: int, text: str, *, timeout: float | None = None) -> str:
        current = await self.read_text(path, timeout=timeout)
        lines = current.splitlines(keepends=True)
        if not 0 <= int(line) <= len(lines):
            raise ToolError(f"insert_line {line} is outside 0..{len(lines)}")
        piece = text if text.endswith("\n") else text + "\n"
        if lines and not lines[-1].endswith("\n") and int(line) == len(lines):
            lines[-1] += "\n"
        lines.insert(int(line), piece)
        await self.write(path, "".join(lines), timeout=timeout)
        return f"inserted {piece.count(chr(10))} line(s) after line {line} of {self.path(path)}"

    async def list_dir(self, path: str | None = None, *, timeout: float | None = None) -> str:
        target = self.path(path)
        out = await self.run(f"ls -1Ap -- {shlex.quote(target)}", timeout=timeout)
        if out.exit_code != 0:
            raise ToolError(f"cannot list {target}: {out.stderr.strip()}")
        return out.stdout.strip() or "(empty directory)"

    async def glob(
        self, pattern: str, path: str | None = None, *, timeout: float | None = None
    ) -> str:
        """Paths matching ``pattern`` under ``path`` with bash globbing (``**`` recurses)."""
        if not isinstance(pattern, str) or not pattern.strip():
            raise ToolError("missing 'pattern'")
        base = self.path(path)
        script = (
            f"cd -- {shlex.quote(base)} || exit 2; "
            "shopt -s globstar nullglob extglob; IFS=; "
            f"pat={shlex.quote(pattern)}; "
            'for f in $pat; do printf "%s\\n" "$f"; done | '
            f"awk -v max={GLOB_LIMIT} '{{ if (NR <= max) print }} "
            'END { if (NR > max) printf "[%d more paths omitted]\\n", NR - max }\''
        )
        out = await self.run(script, timeout=timeout)
        if out.exit_code != 0:
            raise ToolError(f"cannot glob in {base}: {out.stderr.strip() or 'failed'}")
        found = out.stdout.strip()
        return found or f"no files match {pattern!r} under {base}"

    async def grep(
        self,
        pattern: str,
        path: str | None = None,
        include: str | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """``grep -rnIE`` capped at `GREP_LIMIT` lines, with the count of omitted ones (G33)."""
        if not isinstance(pattern, str) or pattern == "":
            raise ToolError("missing 'pattern'")
        target = self.path(path)
        opts = "-rnIE --color=never"
        if include:
            opts += f" --include={shlex.quote(include)}"
        script = (
            f"grep {opts} -e {shlex.quote(pattern)} -- {shlex.quote(target)}; code=$?; exit $code"
        )
        capped = (
            f"set -o pipefail; ( {script} ) | awk -v max={GREP_LIMIT} -v width={GREP_LINE_CHARS} "
            '\'{ if (NR <= max) { if (length($0) > width) print substr($0, 1, width) " [cut]"; '
            "else print } } "
            'END { if (NR > max) printf "[%d more matching lines omitted]\\n", NR - max }\''
        )
        out = await self.run(capped, timeout=timeout)
        if out.exit_code == 1 and not out.stdout.strip():
            return f"no matches for {pattern!r} in {target}"
        if out.exit_code not in (0, 1) and not out.stdout.strip():
            raise ToolError(f"grep failed: {out.stderr.strip() or f'exit {out.exit_code}'}")
        return out.stdout.rstrip("\n")
