"""Which rollout an SSH login, a command or a file-tracking call belongs to.

Each task's control session gets a `Session` (its directory, /tmp and home, running
commands); its ``hello`` carries a user name ``<user>-<token>`` selecting it. A login naming
no session gets the only running rollout, or the prepared root when none runs.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

if TYPE_CHECKING:
    from hud.environment.workspace.filetracking import FileTracker
    from hud.environment.workspace.limits import RolloutCgroup

#: What a login to an ended rollout hears.
ENDED = "this task has ended; its workspace is gone"


@dataclass
class Session:
    """Where one rollout works: its directory, /tmp and home, and its running commands."""

    id: str | None
    dir: Path
    state: Path
    inplace: bool = False
    tracker: FileTracker | None = None
    procs: set[asyncio.subprocess.Process] = field(default_factory=set)
    conns: weakref.WeakSet[asyncssh.SSHServerConnection] = field(default_factory=weakref.WeakSet)
    ended: bool = False
    #: The rollout's cgroup (its commands join it) and whether ``state`` is its own tmpfs.
    cgroup: RolloutCgroup | None = None
    state_mounted: bool = False

    @property
    def tmp(self) -> Path:
        return self.state / "tmp"

    @property
    def home(self) -> Path:
        return self.state / "home"


class SessionTable:
    """The live rollouts of one workspace, by control-session id and by token."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.sessions: dict[str, Session] = {}
        self.tokens: dict[str, str] = {}
        self.retired: set[str] = set()
        #: The prepared root, for logins outside any task (None until started).
        self.shared: Session | None = None

    def get(self, session_id: str | None) -> Session | None:
        return self.sessions.get(session_id or "")

    def add(self, session: Session, token: str) -> None:
        assert session.id is not None
        self.sessions[session.id] = session
        self.tokens[token] = session.id

    def pop(self, session_id: str, token: str) -> Session | None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            self.tokens.pop(token, None)
            self.retired.add(token)
        return session

    def by_rule(self) -> Session | str:
        """The session of a login that names none: the only running rollout, else the
        prepared root when none runs; an error text when several do."""
        active = list(self.sessions.values())
        if len(active) == 1:
            return active[0]
        if not active:
            if self.shared is None:
                return "workspace not started"
            return self.shared
        return (
            f"{len(active)} tasks are running on this workspace; log in with the user name "
            "from your session's hello (or resume the task's session) to reach yours"
        )

    def current(self, session_id: str | None) -> Session | str:
        """The session of the current task (``session_id``), else by rule."""
        if session_id is not None and session_id in self.sessions:
            return self.sessions[session_id]
        return self.by_rule()

    def by_token(self, token: str) -> Session | str | None:
        """The live session a token names, an error text when it has ended, else None."""
        session_id = self.tokens.get(token)
        if session_id is not None and session_id in self.sessions:
            return self.sessions[session_id]
        if token in self.retired:
            return ENDED
        return None

    def for_user(self, username: str) -> Session | str:
        prefix = f"{self.user}-"
        if username.startswith(prefix):
            found = self.by_token(username[len(prefix) :])
            if found is not None:
                return found
        return self.by_rule()

    def tracker_for(self, token: str | None) -> FileTracker:
        """The file tracker of the rollout ``token`` names (LookupError with a message)."""
        if token is not None:
            found = self.by_token(token)
            if isinstance(found, str):
                raise LookupError(found)
            if found is not None and found.tracker is not None:
                return found.tracker
        found = self.by_rule()
        if isinstance(found, str):
            raise LookupError(found)
        if found.tracker is None:
            raise LookupError("file tracking is off for this workspace")
        return found.tracker
