"""Step spans (runtimes-agents.md §3.1) and their local export (§3.2).

With ``HUD_TELEMETRY_LOCAL_DIR`` set (process env, ``./.env`` or ``~/.hud/.env``), every step a
rollout records is appended as one span line to ``<dir>/<trace id as 32 hex>.jsonl``, whatever
the API key or ``HUD_TELEMETRY_ENABLED`` say. Export is best-effort: it never raises into a
rollout. Hook: `attach(trace)` once the trace has its id (``rollout`` does it).
"""

from __future__ import annotations

import json
import logging
import random
import re
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("hud.telemetry")

STEP_SCHEMA = "hud.step.v1"
SCHEMA_ATTRIBUTE = "hud.schema"
TASK_RUN_ID_ATTRIBUTE = "hud.task_run_id"
PAYLOAD_ATTRIBUTE = "hud.payload"
LOCAL_DIR_SETTING = "HUD_TELEMETRY_LOCAL_DIR"


_HEX32 = re.compile(r"[0-9a-f]{32}")


def normalize_trace_id(trace_id: str) -> str:
    """A rollout id as 32 lowercase hex: a UUID with its dashes dropped, anything else
    ``uuid5(NAMESPACE_URL, "hud.task_run:<id>")``."""
    text = str(trace_id)
    if _HEX32.fullmatch(text):  # already the form (the eval's ids): every span pays this
        return text
    try:
        return uuid.UUID(text).hex
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"hud.task_run:{text}").hex


def new_span_id() -> str:
    """16 random hex digits, never all zeros (an invalid OpenTelemetry span id). Span ids
    only need to be unique within their trace, so the module's generator serves (reseeded in
    a forked child); an ``os.urandom`` call per span would cost more than the rest of it."""
    return f"{random.getrandbits(64) or 1:016x}"


#: The step whose payload was made last, and that payload (see `step_payload`).
_last_payload: tuple[Any, dict[str, Any]] | None = None


def step_payload(step: Any) -> dict[str, Any]:
    """``step`` in JSON mode without None fields: its span's ``hud.payload`` and its line in
    the job record. The one made last is kept (one step, not a growing cache), so the job
    record's step line, the local span and the reported span of a step just recorded share one
    serialisation. Treat it as read-only."""
    global _last_payload
    last = _last_payload
    if last is not None and last[0] is step:
        return last[1]
    payload = step.model_dump(mode="json", exclude_none=True)
    _last_payload = (step, payload)
    return payload


def step_span(task_run_id: str, step: Any, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """The span of one recorded step, in the reference's exported shape; ``payload``: the
    step's `step_payload` when already made."""
    from hud.types.trace import now_iso

    if payload is None:
        payload = step_payload(step)
    end = step.ended_at or now_iso()
    error = step.error
    return {
        "name": f"step.{step.source}",
        "trace_id": normalize_trace_id(task_run_id),
        "span_id": new_span_id(),
        "parent_span_id": None,
        "kind": "INTERNAL",
        "start_time": step.started_at or end,
        "end_time": end,
        "status_code": "ERROR" if error else "OK",
        "status_message": error if error else None,
        "attributes": {
            SCHEMA_ATTRIBUTE: STEP_SCHEMA,
            TASK_RUN_ID_ATTRIBUTE: task_run_id,
            PAYLOAD_ATTRIBUTE: payload,
        },
        "events": [],
    }


def local_dir() -> Path | None:
    """The span directory (``HUD_TELEMETRY_LOCAL_DIR``), or None when unset."""
    try:
        from hud.settings import get_setting

        value = get_setting(LOCAL_DIR_SETTING)
    except Exception:  # settings unreadable: no local export
        return None
    return Path(value).expanduser() if value else None


def export_local(span: dict[str, Any], directory: Path) -> None:
    """Append ``span`` to ``<directory>/<trace_id>.jsonl`` (directory created)."""
    if not (span.get("attributes") or {}).get(TASK_RUN_ID_ATTRIBUTE):
        return
    directory.mkdir(parents=True, exist_ok=True)
    line = json.dumps(span, ensure_ascii=False, default=str, separators=(",", ":")) + "\n"
    with open(directory / f"{span['trace_id']}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(line)


class SpanListener:
    """A `Trace` listener exporting each recorded step as a span to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(self, trace: Any, step: Any) -> None:
        try:
            task_run_id = trace.trace_id
            if not task_run_id:
                return
            export_local(step_span(str(task_run_id), step), self.directory)
        except Exception as exc:  # best-effort: never break the rollout
            log.debug("span export failed: %s", exc)


def attach(trace: Any, directory: Path | None = None) -> bool:
    """Export ``trace``'s steps as spans when a local span directory is configured.

    ``directory`` overrides ``HUD_TELEMETRY_LOCAL_DIR``. Idempotent; never raises. Returns
    whether spans will be written.
    """
    try:
        target = directory if directory is not None else local_dir()
        if target is None:
            return False
        listeners = getattr(trace, "_listeners", [])
        if any(isinstance(fn, SpanListener) for fn in listeners):
            return True
        trace.listen(SpanListener(Path(target)))
        return True
    except Exception as exc:
        log.debug("cannot attach span export: %s", exc)
        return False
