"""`Task` rows (defined in `hud.types`, the layer environments and evaluation share)."""

from hud.types.task import Task, default_slug

__all__ = ["Task", "default_slug"]
