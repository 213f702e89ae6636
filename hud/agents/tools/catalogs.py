"""Tool catalogs: the tools each provider's model gets for an opened ``ssh`` capability.

Every catalog wraps the same `ShellOps`; only names, argument names and native specs differ
(runtimes-agents.md §2.5).
"""

from __future__ import annotations

from typing import Any

from hud.agents.tools.base import (
    AgentTool,
    ToolContext,
    ToolError,
    ToolTimeoutError,
    text_result,
)
from hud.agents.tools.shell import CommandOutput, ShellOps, format_command
from hud.types.trace import MCPToolResult

__all__ = ["chat_tools", "claude_tools", "gemini_tools", "openai_tools"]


def _limit(ctx: ToolContext, model_seconds: float | None) -> float | None:
    """The tighter of the agent's tool timeout and a timeout the model asked for."""
    values = [v for v in (ctx.timeout, model_seconds) if v]
    return min(values) if values else None


def _ms(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number / 1000.0 if number > 0 else None


def _str(args: dict[str, Any], *names: str, required: bool = True) -> str | None:
    for name in names:
        value = args.get(name)
        if value is not None:
            return value if isinstance(value, str) else str(value)
    if required:
        raise ToolError(f"missing {names[0]!r}")
    return None


def _int(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ToolError(f"{name!r} must be an integer, got {value!r}") from None


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _command_result(text: str, out: CommandOutput) -> MCPToolResult:
    return text_result(text, is_error=out.exit_code != 0)


# -- OpenAI-compatible (Chat Completions) ------------------------------------------------------
def chat_tools(ops: ShellOps) -> list[AgentTool]:
    """``bash``, ``read``, ``glob``, ``grep``, ``edit``, ``write``."""

    async def bash(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        text, out = await ops.bash(
            _str(args, "command") or "",
            timeout=_limit(ctx, _ms(args.get("timeout"))),
            cwd=_str(args, "workdir", required=False),
        )
        return _command_result(text, out)

    async def read(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        offset = _int(args, "offset")
        text = await ops.read(
            _str(args, "filePath", "file_path", "path") or "",
            offset=(offset + 1) if offset is not None else None,
            limit=_int(args, "limit"),
            timeout=ctx.timeout,
        )
        return text_result(text)

    async def glob(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        return text_result(
            await ops.glob(
                _str(args, "pattern") or "",
                _str(args, "path", required=False),
                timeout=ctx.timeout,
            )
        )

    async def grep(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        return text_result(
            await ops.grep(
                _str(args, "pattern") or "",
                _str(args, "path", required=False),
                _str(args, "include", required=False),
                timeout=ctx.timeout,
            )
        )

    async def edit(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        return text_result(
            await ops.edit(
                _str(args, "filePath", "file_path", "path") or "",
                _str(args, "oldString", "old_string") or "",
                _str(args, "newString", "new_string") or "",
                replace_all=bool(args.get("replaceAll") or args.get("replace_all")),
                timeout=ctx.timeout,
            )
        )

    async def write(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        return text_result(
            await ops.write(
                _str(args, "filePath", "file_path", "path") or "",
                _str(args, "content") or "",
                timeout=ctx.timeout,
            )
        )

    s = {"type": "string"}
    return [
        AgentTool(
            "bash",
            "Run a shell command (bash) in the workspace and return its output and exit code. "
            "Each call starts a fresh shell.",
            _object(
                {
                    "command": {**s, "description": "The command to run."},
                    "timeout": {"type": "number", "description": "Timeout in milliseconds."},
                    "workdir": {**s, "description": "Directory to run the command in."},
                    "description": {**s, "description": "What the command does (5-10 words)."},
                },
                ["command"],
            ),
            bash,
            family="ssh",
        ),
        AgentTool(
            "read",
            "Read a text file; lines are numbered. offset is the 0-based first line, limit the "
            "number of lines (default 2000).",
            _object(
                {
                    "filePath": {**s, "description": "Path of the file."},
                    "offset": {"type": "integer"},
                    "limit": {"type": "integer"},
                },
                ["filePath"],
            ),
            read,
            family="ssh",
        ),
        AgentTool(
            "glob",
            "List files matching a glob pattern (bash globbing; ** matches any depth).",
            _object(
                {"pattern": s, "path": {**s, "description": "Directory to search in."}},
                ["pattern"],
            ),
            glob,
            family="ssh",
        ),
        AgentTool(
            "grep",
            "Search file contents with an extended regular expression; returns file:line:text "
            "(capped, with a count of omitted matches).",
            _object(
                {
                    "pattern": s,
                    "path": {**s, "description": "File or directory to search."},
                    "include": {**s, "description": "File name glob, e.g. *.py"},
                },
                ["pattern"],
            ),
            grep,
            family="ssh",
        ),
        AgentTool(
            "edit",
            "Replace oldString with newString in a file (oldString must be unique unless "
            "replaceAll is true).",
            _object(
                {
                    "filePath": s,
                    "oldString": s,
                    "newString": s,
                    "replaceAll": {"type": "boolean"},
                },
                ["filePath", "oldString", "newString"],
            ),
            edit,
            family="ssh",
        ),
        AgentTool(
            "write",
            "Write content to a file, creating it (and its directories) or replacing it.",
            _object({"content": s, "filePath": s}, ["content", "filePath"]),
            write,
            family="ssh",
        ),
    ]


# -- Claude -----------------------------------------------------------------------------------
def claude_tools(ops: ShellOps) -> list[AgentTool]:
    """``bash`` (``bash_20250124``), ``str_replace_based_edit_tool`` (``text_editor_20250728``)."""

    async def bash(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        if args.get("restart"):
            return text_result("tool has been restarted.")
        text, out = await ops.bash(_str(args, "command") or "", timeout=ctx.timeout)
        return _command_result(text, out)

    async def editor(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        command = _str(args, "command") or ""
        path = _str(args, "path") or ""
        t = ctx.timeout
        if command == "view":
            rng = args.get("view_range")
            kind = await ops.run(f"test -d {_q(ops.path(path))}", timeout=t)
            if kind.exit_code == 0:
                return text_result(await ops.list_dir(path, timeout=t))
            if isinstance(rng, list) and len(rng) == 2:
                start, end = int(rng[0]), int(rng[1])
                limit = None if end == -1 else max(end - start + 1, 0)
                return text_result(await ops.read(path, offset=start, limit=limit, timeout=t))
            return text_result(await ops.read(path, limit=10**9, timeout=t))
        if command == "create":
            return text_result(await ops.write(path, _str(args, "file_text") or "", timeout=t))
        if command == "str_replace":
            old = _str(args, "old_str") or ""
            new = _str(args, "new_str", required=False) or ""
            return text_result(await ops.edit(path, old, new, timeout=t))
        if command == "insert":
            line = _int(args, "insert_line")
            if line is None:
                raise ToolError("missing 'insert_line'")
            text = _str(args, "insert_text", "new_str") or ""
            return text_result(await ops.insert(path, line, text, timeout=t))
        raise ToolError(f"unknown command {command!r}: use view, create, str_replace or insert")

    s = {"type": "string"}
    return [
        AgentTool(
            "bash",
            "Run a bash command.",
            _object({"command": s, "restart": {"type": "boolean"}}, []),
            bash,
            family="ssh",
            native={"type": "bash_20250124", "name": "bash"},
        ),
        AgentTool(
            "str_replace_based_edit_tool",
            "View, create and edit files.",
            _object(
                {
                    "command": {"enum": ["view", "create", "str_replace", "insert"]},
                    "path": s,
                    "file_text": s,
                    "old_str": s,
                    "new_str": s,
                    "insert_line": {"type": "integer"},
                    "insert_text": s,
                    "view_range": {"type": "array", "items": {"type": "integer"}},
                },
                ["command", "path"],
            ),
            editor,
            family="ssh",
            native={"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        ),
    ]


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


# -- OpenAI Responses -------------------------------------------------------------------------
def openai_tools(ops: ShellOps) -> list[AgentTool]:
    """The native ``shell`` tool: ``action.commands`` run in order, one output per command."""

    async def shell(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        commands = args.get("commands")
        if isinstance(commands, str):
            commands = [commands]
        if not isinstance(commands, list) or not commands:
            raise ToolError("missing 'commands'")
        limit = _limit(ctx, _ms(args.get("timeout_ms")))
        max_len = _int(args, "max_output_length")
        outputs: list[dict[str, Any]] = []
        texts: list[str] = []
        failed = False
        for command in commands:
            try:
                out = await ops.run(str(command), timeout=limit)
            except ToolTimeoutError as exc:
                outputs.append({"stdout": "", "stderr": str(exc), "outcome": {"type": "timeout"}})
                texts.append(f"$ {command}\n{exc}")
                failed = True
                break
            stdout, stderr = out.stdout, out.stderr
            if max_len:
                stdout, stderr = stdout[:max_len], stderr[:max_len]
            outputs.append(
                {
                    "stdout": stdout,
                    "stderr": stderr,
                    "outcome": {"type": "exit", "exit_code": out.exit_code or 0},
                }
            )
            texts.append(format_command(out))
            failed = failed or out.exit_code != 0
        structured: dict[str, Any] = {"output": outputs}
        if max_len:
            structured["max_output_length"] = max_len
        return text_result("\n".join(texts), is_error=failed, structured=structured)

    return [
        AgentTool(
            "shell",
            "Run shell commands in the workspace.",
            _object(
                {
                    "commands": {"type": "array", "items": {"type": "string"}},
                    "timeout_ms": {"type": "integer"},
                    "max_output_length": {"type": "integer"},
                },
                ["commands"],
            ),
            shell,
            family="ssh",
            native={"type": "shell"},
        )
    ]


# -- Gemini -----------------------------------------------------------------------------------
def gemini_tools(ops: ShellOps) -> list[AgentTool]:
    """``run_shell_command, replace, write_file, read_file, grep_search, glob, list_directory``."""

    async def run_shell_command(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        text, out = await ops.bash(
            _str(args, "command") or "",
            timeout=ctx.timeout,
            cwd=_str(args, "directory", "dir_path", required=False),
        )
        return _command_result(text, out)

    async def replace(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        expected = _int(args, "expected_replacements")
        return text_result(
            await ops.edit(
                _str(args, "file_path", "absolute_path") or "",
                _str(args, "old_string") or "",
                _str(args, "new_string") or "",
                expected=expected if expected and expected > 1 else None,
                timeout=ctx.timeout,
            )
        )

    async def write_file(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        return text_result(
            await ops.write(
                _str(args, "file_path", "absolute_path") or "",
                _str(args, "content") or "",
                timeout=ctx.timeout,
            )
        )

    async def read_file(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        offset = _int(args, "offset")
        return text_result(
            await ops.read(
                _str(args, "absolute_path", "file_path", "path") or "",
                offset=(offset + 1) if offset is not None else None,
                limit=_int(args, "limit"),
                timeout=ctx.timeout,
            )
        )

    async def grep_search(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        return text_result(
            await ops.grep(
                _str(args, "pattern") or "",
                _str(args, "path", "dir_path", required=False),
                _str(args, "include", required=False),
                timeout=ctx.timeout,
            )
        )

    async def glob(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        return text_result(
            await ops.glob(
                _str(args, "pattern") or "",
                _str(args, "path", "dir_path", required=False),
                timeout=ctx.timeout,
            )
        )

    async def list_directory(args: dict[str, Any], ctx: ToolContext) -> MCPToolResult:
        return text_result(
            await ops.list_dir(_str(args, "path", "dir_path", required=False), timeout=ctx.timeout)
        )

    s = {"type": "string"}
    return [
        AgentTool(
            "run_shell_command",
            "Run a bash command in the workspace; returns its output and exit code.",
            _object({"command": s, "description": s, "directory": s}, ["command"]),
            run_shell_command,
            family="ssh",
        ),
        AgentTool(
            "replace",
            "Replace old_string with new_string in a file (old_string must match exactly; "
            "set expected_replacements to replace several occurrences).",
            _object(
                {
                    "file_path": s,
                    "old_string": s,
                    "new_string": s,
                    "expected_replacements": {"type": "integer"},
                },
                ["file_path", "old_string", "new_string"],
            ),
            replace,
            family="ssh",
        ),
        AgentTool(
            "write_file",
            "Write content to a file (created or replaced).",
            _object({"file_path": s, "content": s}, ["file_path", "content"]),
            write_file,
            family="ssh",
        ),
        AgentTool(
            "read_file",
            "Read a text file; offset is the 0-based first line, limit the number of lines.",
            _object(
                {"absolute_path": s, "offset": {"type": "integer"}, "limit": {"type": "integer"}},
                ["absolute_path"],
            ),
            read_file,
            family="ssh",
        ),
        AgentTool(
            "grep_search",
            "Search file contents with a regular expression (capped output).",
            _object({"pattern": s, "path": s, "include": s}, ["pattern"]),
            grep_search,
            family="ssh",
        ),
        AgentTool(
            "glob",
            "List files matching a glob pattern (** matches any depth).",
            _object({"pattern": s, "path": s}, ["pattern"]),
            glob,
            family="ssh",
        ),
        AgentTool(
            "list_directory",
            "List the entries of a directory (directories end with /).",
            _object({"path": s}, []),
            list_directory,
            family="ssh",
        ),
    ]
