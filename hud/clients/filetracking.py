"""The rollout side of ``filetracking/1``: ask the env what changed in its workspace.

The env's server is `hud.environment.workspace.filetracking`; frames are the control
channel's (`hud.protocol`). `hud.eval` records the report as a step.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from hud.capabilities import FILETRACKING
from hud.protocol import decode_frame, encode_frame, request_frame

if TYPE_CHECKING:
    from hud.clients.client import HudClient

#: Largest filetracking frame a client reads (a diff report carries the patches).
CLIENT_LINE_LIMIT = 160 * 1024 * 1024


def summarize(report: dict[str, Any]) -> str:
    """A readable account of a diff report: one line per file, then the patches."""
    patches = report.get("patches") or []
    if not patches:
        return "[files] no changes in the workspace"
    marks = {"added": "+", "deleted": "-", "modified": "~"}
    lines = [f"[files] {len(patches)} changed in the workspace:"]
    for p in patches:
        note = " (binary)" if p.get("binary") else ""
        lines.append(f"  {marks.get(p.get('status'), '?')} {p.get('path')}{note}")
    body = "\n\n".join(str(p.get("patch") or "") for p in patches)
    return "\n".join(lines) + "\n\n" + body


async def _rpc(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    writer.write(encode_frame(request_frame(1, method, params)))
    await writer.drain()
    line = await reader.readline()
    if not line:
        raise EOFError("filetracking closed the connection")
    reply = decode_frame(line)
    if not isinstance(reply, dict):
        raise RuntimeError(f"filetracking {method}: reply was not an object")
    if reply.get("error"):
        raise RuntimeError(f"filetracking {method}: {reply['error'].get('message')}")
    result = reply.get("result")
    if not isinstance(result, dict):
        raise RuntimeError(f"filetracking {method}: result was not an object")
    return result


def tracks_files(client: HudClient) -> bool:
    """Whether the env publishes a ``filetracking/1`` binding."""
    return any(b.protocol == FILETRACKING for b in client.bindings)


async def workspace_diff(client: HudClient, *, timeout: float = 60.0) -> dict[str, Any] | None:
    """What changed in the env's workspace since the task's setup (the diff report), or None
    when the env publishes no ``filetracking/1`` binding. Failures raise."""
    bindings = [b for b in client.bindings if b.protocol == FILETRACKING]
    if not bindings:
        return None
    binding = bindings[0]
    params: dict[str, Any] = {"since": "setup"}
    session = binding.params.get("session")
    if isinstance(session, str):
        params["session"] = session
    async with asyncio.timeout(timeout):
        reader, writer = await client.open_tunnel(binding.name)
        try:
            reader._limit = CLIENT_LINE_LIMIT  # type: ignore[attr-defined]
            return await _rpc(reader, writer, "diff", params)
        finally:
            writer.close()
