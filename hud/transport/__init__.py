"""asyncio byte relays shared by the server and the client."""

from hud.transport.splice import Half, pipe, relay, splice

__all__ = ["Half", "pipe", "relay", "splice"]
