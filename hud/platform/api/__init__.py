"""HTTP face of the platform (FastAPI): routes parse requests, call `hud.platform.services`,
and answer. `create_app` builds the whole app."""

from __future__ import annotations

from hud.platform.api.app import create_app

__all__ = ["create_app"]
