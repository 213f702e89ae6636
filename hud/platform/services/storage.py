"""Where the platform keeps uploaded files (build contexts): a small interface an
S3-compatible store could implement, and `LocalStorage` under the platform's data dir."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

from hud.platform.services.errors import Invalid

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


class Storage(Protocol):
    """Objects by key: written once from a byte stream, read back as a file."""

    async def put(self, key: str, chunks: AsyncIterator[bytes], *, limit: int) -> int:
        """Store the stream under ``key`` (replacing it); the byte count. Over ``limit``
        bytes: `Invalid`, and nothing is stored."""
        ...

    def open(self, key: str) -> BinaryIO:
        """The object for reading; `FileNotFoundError` when absent."""
        ...

    def delete(self, key: str) -> None: ...


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"bad storage key {key!r}")
    return key


class LocalStorage:
    """Objects as files under ``root`` (written to a temporary name, then renamed)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, chunks: AsyncIterator[bytes], *, limit: int) -> int:
        target = self.path(key)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        size = 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise Invalid(f"upload larger than {limit // (1024 * 1024)} MiB")
                    fh.write(chunk)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        return size

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def delete(self, key: str) -> None:
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
