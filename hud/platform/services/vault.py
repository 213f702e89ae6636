"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with one key kept in the platform's data
dir (``secret.key``, mode 0600, created on first use). Values are only ever decrypted to be
injected into an environment's container."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

KEY_FILE = "secret.key"


class Vault:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / KEY_FILE
        self._fernet: Any = None

    def _box(self) -> Any:
        if self._fernet is None:
            from cryptography.fernet import Fernet

            if not self.path.exists():
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass
                else:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(Fernet.generate_key())
            self._fernet = Fernet(self.path.read_bytes().strip())
        return self._fernet

    def seal(self, value: str) -> str:
        return self._box().encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        return self._box().decrypt(token.encode("ascii")).decode("utf-8")
