"""Our server with the prototype splice of ``proto_splice.py`` patched in (benchmark only)."""

from __future__ import annotations

import proto_splice

import hud.environment.server as server_module

server_module.splice = proto_splice.splice  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(server_module.main())
