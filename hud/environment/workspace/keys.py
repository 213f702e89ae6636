"""The workspace's SSH credentials: a host key, an ephemeral client key, the keys allowed to
log in, and the per-session tokens naming a rollout (all kept in a 0700 directory outside
the workspace root)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

#: File names in the credentials directory.
CLIENT_KEY = "client_ed25519"


def inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def private_dir(prefix: str, root: Path, base: str | os.PathLike[str] | None) -> Path:
    """A fresh 0700 directory outside ``root`` (``base`` itself when given)."""
    if base is not None:
        path = Path(base)
        if inside(path, root):
            raise ValueError(f"credentials_dir {path} must be outside the workspace root {root}")
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        return path
    candidates = [tempfile.gettempdir(), "/dev/shm", "/var/tmp", str(Path.home() / ".cache")]
    for candidate in candidates:
        if os.path.isdir(candidate) and not inside(Path(candidate), root):
            return Path(tempfile.mkdtemp(prefix=prefix, dir=candidate))
    raise RuntimeError(f"no temporary directory outside the workspace root {root}")


@dataclass
class Keys:
    """The keys of one started workspace."""

    host: asyncssh.SSHKey
    client: asyncssh.SSHKey
    client_text: bytes
    allowed: set[bytes]
    #: Signs session tokens; fresh per start (after a fork, not shared with siblings).
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def allows(self, key: asyncssh.SSHKey) -> bool:
        return key.public_data in self.allowed

    def session_token(self, session_id: str) -> str:
        """The token naming a control session's rollout (stable, unguessable)."""
        mac = hmac.new(self.secret, session_id.encode(), hashlib.sha256)
        return mac.hexdigest()[:20]


def make_keys(
    creds: Path, host_key_path: Path | None, authorized_client_keys: Sequence[Path]
) -> Keys:
    """Load or generate the host key, generate a client key, write both (0600) into ``creds``
    with ``authorized_keys`` (blocking: run in a thread)."""
    if host_key_path is not None and host_key_path.exists():
        host = asyncssh.read_private_key(host_key_path)
    else:
        host = asyncssh.generate_private_key("ssh-ed25519")
    client = asyncssh.generate_private_key("ssh-ed25519")
    client_text = client.export_private_key()
    files = {
        "host_ed25519": host.export_private_key(),
        "host_ed25519.pub": host.export_public_key(),
        CLIENT_KEY: client_text,
        f"{CLIENT_KEY}.pub": client.export_public_key(),
    }
    for name, data in files.items():
        fd = os.open(creds / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    allowed = [client.convert_to_public()]
    for path in authorized_client_keys:
        allowed += asyncssh.read_public_key_list(path)
    (creds / "authorized_keys").write_bytes(b"".join(k.export_public_key() for k in allowed))
    return Keys(host, client, client_text, {key.public_data for key in allowed})
