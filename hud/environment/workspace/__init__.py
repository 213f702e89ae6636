"""The workspace: env-side servers behind the ``shell`` (``ssh/2``) and ``filetracking/1``
capabilities, and the sandbox its commands run in.

`Workspace` is the face (`hud.environment.Workspace`); beside it, by responsibility:
`keys` (SSH credentials, session tokens), `routing` (which rollout a login belongs to),
`sessions` (per-rollout copies of the root), `sandbox` (bubblewrap argv and environment),
`processes` (spawn and kill), `sshserver` (asyncssh server classes), `relay` (pipes and PTY),
`sftp`, `ssh_streams` and `filetracking`.
"""

from hud.capabilities import CommandResult
from hud.environment.workspace.files import WorkspacePathError
from hud.environment.workspace.limits import Limits
from hud.environment.workspace.sandbox import DEFAULT_SYSTEM_MOUNTS, Mount, MountKind
from hud.environment.workspace.sessions import WorkspaceBroken
from hud.environment.workspace.workspace import (
    Peer,
    ProcessResult,
    Workspace,
    WorkspaceLimitError,
)

__all__ = [
    "DEFAULT_SYSTEM_MOUNTS",
    "CommandResult",
    "Limits",
    "Mount",
    "MountKind",
    "Peer",
    "ProcessResult",
    "Workspace",
    "WorkspaceBroken",
    "WorkspaceLimitError",
    "WorkspacePathError",
]
