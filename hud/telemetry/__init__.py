"""Telemetry: step spans and their local export (``HUD_TELEMETRY_LOCAL_DIR``)."""

from hud.telemetry.spans import (
    STEP_SCHEMA,
    attach,
    export_local,
    local_dir,
    new_span_id,
    normalize_trace_id,
    step_payload,
    step_span,
)

__all__ = [
    "STEP_SCHEMA",
    "attach",
    "export_local",
    "local_dir",
    "new_span_id",
    "normalize_trace_id",
    "step_payload",
    "step_span",
]
