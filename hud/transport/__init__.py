"""asyncio stream helpers shared by the server and the client: byte splicing."""

from hud.transport.splice import pipe, splice

__all__ = ["pipe", "splice"]
