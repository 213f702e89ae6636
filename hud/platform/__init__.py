"""The self-hosted HUD platform: REST API, telemetry ingest, accounts, jobs and traces.

Layers: ``api`` (HTTP routes, request/reply models) -> ``services`` (the platform's rules, no
HTTP) -> ``db`` (SQLAlchemy tables, Alembic migrations). The server and its dependencies are the
``platform`` extra (``pip install 'hud[platform]'``); this package's ``__init__`` imports nothing
heavy so that clients (``hud.platform.client``) work without it.
"""

from __future__ import annotations
