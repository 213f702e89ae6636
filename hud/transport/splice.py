"""Copy bytes between two stream pairs, forwarding half-close, until both sides are done."""

from __future__ import annotations

import asyncio
import contextlib

CHUNK = 256 * 1024


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` into ``writer`` until EOF, then half-close ``writer``."""
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            if writer.transport.get_write_buffer_size() > CHUNK:
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()


async def splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Splice A <-> B; returns when both directions reached EOF (or one side failed)."""
    try:
        await asyncio.gather(pipe(a_reader, b_writer), pipe(b_reader, a_writer))
    finally:
        for w in (a_writer, b_writer):
            with contextlib.suppress(Exception):
                w.close()
