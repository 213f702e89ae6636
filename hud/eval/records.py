"""Local job records: everything a `hud eval` did, written to disk as it happens (G39).

Layout (``<base>`` defaults to ``.hud/jobs`` under the current directory)::

    <base>/<job_id>/
        job.json                  the job: {"job_id", "name", "created_at", "updated_at",
                                  "status", "config", "summary", "pid"}; rewritten atomically
        runs.jsonl                one row per finished rollout, appended (flush + fsync) when it
                                  finishes: {"trace_id", "slug", "task_id", "args",
                                  "group_index", "reward", "status", "stop_reason", "error",
                                  "is_error", "answer", "duration_s", "finished_at"}
        traces/<trace_id>.jsonl   one rollout: a header line then one line per step

``status`` of the job is ``running``, ``completed``, ``interrupted`` or ``failed``. A job whose
``status`` is still ``running`` but whose ``pid`` is gone was killed (`JobRecord.effective_status`
says ``interrupted``).

A trace file's first line is the header::

    {"type": "trace", "trace_id", "job_id", "group_id", "group_index", "slug", "task_id",
     "args", "reward", "grade": <raw grade frame or null>, "status", "stop_reason", "error",
     "is_error", "content", "started_at", "finished_at", "duration_s", "extra"}

and every further line is ``{"type": "step", ...}`` with the step in JSON mode (None fields
dropped, as in telemetry payloads): the ``task`` setup step (start frame), the ``user`` prompt,
``agent`` turns, ``tool`` steps (call **and** result), ``system`` notes and the ``task``
evaluate step (answer and grade frame with subscores). While a rollout is in flight its steps
are appended to the same file under a header with ``status: null``; when the rollout finishes
the file is replaced atomically (tmp + fsync + rename) by the final version, and only then is
its row appended to ``runs.jsonl``. So every row of ``runs.jsonl`` has a complete trace file,
and a trace file without a row is a rollout that was cut off.

``--resume`` reads ``runs.jsonl`` (`JobRecord.done_counts` / `JobRecord.done_indices`) and skips
what finished. `load_trace_file` also reads telemetry span files (``HUD_TELEMETRY_LOCAL_DIR``)
into the same shape, and `trace_events` turns a loaded trace into the event list of
``hud trace --json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from hud.types.job import JobSummary, RunRow, TraceHeader, TraceRecord
from hud.types.trace import Trace, now_iso

__all__ = [
    "DEFAULT_JOBS_DIR",
    "JobRecord",
    "find_trace",
    "list_jobs",
    "load_trace_file",
    "read_trace",
    "run_row",
    "trace_events",
]

DEFAULT_JOBS_DIR = Path(".hud/jobs")
JOB_FILE = "job.json"
RUNS_FILE = "runs.jsonl"
TRACES_DIR = "traces"
STATUSES = ("running", "completed", "interrupted", "failed")


# -- file helpers ------------------------------------------------------------------------
def _now() -> str:

    return now_iso()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, text: str, *, sync: bool = True) -> None:
    """Write ``text`` to ``path`` via a temp file and a rename (both fsynced unless not
    ``sync``): a reader, or a process killed meanwhile, never leaves ``path`` part-written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if sync:
        _fsync_dir(path.parent)


def _append_line(path: Path, line: str, *, sync: bool = True) -> None:
    """Append one JSON line; starts on a fresh line if the file ends in a torn line."""
    with open(path, "ab") as fh:
        if fh.tell() > 0:
            with open(path, "rb") as rd:
                rd.seek(-1, os.SEEK_END)
                if rd.read(1) != b"\n":
                    fh.write(b"\n")
        fh.write(line.encode("utf-8") + b"\n")
        fh.flush()
        if sync:
            os.fsync(fh.fileno())


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed object lines of ``path``; unparsable (torn) lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    # Only "\n" ends a row: text is written unescaped, so U+2028, U+0085, form feeds and the
    # like may sit raw inside a string (str.splitlines would cut the row there).
    for raw in text.split("\n"):
        raw = raw.strip(" \t\r")
        if not raw:
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _iso_seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    try:
        start = datetime.fromisoformat(a.replace("Z", "+00:00"))
        end = datetime.fromisoformat(b.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((end - start).total_seconds(), 3)


def _norm_id(text: str) -> str:
    return text.strip().lower().replace("-", "")


# -- serializing runs ------------------------------------------------------------------
def step_json(step: Any) -> dict[str, Any]:
    """A step in JSON mode without None fields (the telemetry payload shape; made once for
    the record and the step's spans, see `hud.telemetry.step_payload`)."""
    from hud.telemetry import step_payload

    return step_payload(step)


def trace_header(run: Any, duration: float | None, finished_at: str) -> TraceHeader:
    """The header of a finished rollout's trace file."""
    from hud.eval.job import Job

    trace = run.trace
    grade = run.grade
    steps = trace.steps
    return TraceHeader(
        trace_id=trace.trace_id,
        job_id=run.job_id,
        group_id=run.group_id,
        group_index=trace.extra.get("group_index"),
        slug=run.slug,
        task_id=run.task_id,
        args=run.args,
        reward=run.reward,
        grade=grade.raw if grade is not None else None,
        status=trace.status,
        stop_reason=trace.stop_reason,
        error=run.error,
        is_error=not Job.counts(run),
        content=trace.content,
        started_at=steps[0].started_at if steps else None,
        finished_at=finished_at,
        duration_s=duration,
        extra=trace.extra,
    )


def run_row(run: Any, *, duration: float | None = None, finished_at: str | None = None) -> RunRow:
    """The ``runs.jsonl`` row of a finished `Run`."""
    return trace_header(run, duration, finished_at or _now()).row()


def read_trace(path: Path) -> Trace:
    """A trace file of a job record as a `Trace` (steps of their own classes)."""
    return TraceRecord.from_lines(_read_jsonl(Path(path))).to_trace()


# -- the job record ----------------------------------------------------------------------
class JobRecord:
    """One job's directory: ``job.json``, ``runs.jsonl`` and ``traces/``."""

    def __init__(self, root: Path, data: dict[str, Any]) -> None:
        self.root = Path(root)
        self.job_id: str = str(data.get("job_id") or self.root.name)
        self.name: str = str(data.get("name") or "")
        self.created_at: str | None = data.get("created_at")
        self.updated_at: str | None = data.get("updated_at")
        self.status: str = str(data.get("status") or "running")
        self.config: dict[str, Any] = dict(data.get("config") or {})
        self.summary: dict[str, Any] = dict(data.get("summary") or {})
        self.pid: int | None = data.get("pid")
        self._started: dict[str, float] = {}
        self._finalized: set[str] = set()
        #: Failures to write a finished rollout while attached (``hud eval`` should warn).
        self.write_errors: list[str] = []

    def __repr__(self) -> str:
        return f"<JobRecord {self.job_id} {self.status} {self.root}>"

    # -- paths -------------------------------------------------------------------------
    @property
    def job_file(self) -> Path:
        return self.root / JOB_FILE

    @property
    def runs_file(self) -> Path:
        return self.root / RUNS_FILE

    @property
    def traces_dir(self) -> Path:
        return self.root / TRACES_DIR

    def trace_path(self, trace_id: str) -> Path:
        return self.traces_dir / f"{trace_id}.jsonl"

    # -- creating and opening ----------------------------------------------------------
    @classmethod
    def create(
        cls, job_id: str, name: str, config: dict[str, Any], *, base_dir: Path = DEFAULT_JOBS_DIR
    ) -> JobRecord:
        """Make ``<base_dir>/<job_id>/`` and write ``job.json`` (status ``running``)."""
        root = Path(base_dir) / job_id
        if (root / JOB_FILE).exists():
            raise FileExistsError(f"job {job_id!r} already exists in {base_dir}")
        (root / TRACES_DIR).mkdir(parents=True, exist_ok=True)
        now = _now()
        record = cls(
            root,
            {
                "job_id": job_id,
                "name": name,
                "created_at": now,
                "updated_at": now,
                "status": "running",
                "config": config,
                "summary": {},
                "pid": os.getpid(),
            },
        )
        record._write()
        return record

    @classmethod
    def load(cls, root: Path) -> JobRecord:
        """Read the record in directory ``root`` (``ValueError`` if ``job.json`` is unusable)."""
        root = Path(root)
        try:
            data = json.loads((root / JOB_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ValueError(f"{root} has no {JOB_FILE}") from exc
        except ValueError as exc:
            raise ValueError(f"{root / JOB_FILE} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{root / JOB_FILE} is not a JSON object")
        return cls(root, data)

    @classmethod
    def open(cls, job_id: str, *, base_dir: Path = DEFAULT_JOBS_DIR) -> JobRecord:
        """The job ``job_id`` (a unique prefix is enough); `LookupError` otherwise."""
        base = Path(base_dir)
        wanted = job_id.strip()
        if not wanted:
            raise LookupError("empty job id")
        exact = base / wanted
        if (exact / JOB_FILE).is_file():
            return cls.load(exact)
        candidates = (
            sorted(p for p in base.iterdir() if (p / JOB_FILE).is_file()) if base.is_dir() else []
        )
        key = _norm_id(wanted)
        matches = [p for p in candidates if _norm_id(p.name).startswith(key)]
        if not matches:
            raise LookupError(f"no job matching {job_id!r} in {base}")
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches[:5])
            more = f" (+{len(matches) - 5} more)" if len(matches) > 5 else ""
            raise LookupError(f"job id {job_id!r} is ambiguous: {names}{more}")
        return cls.load(matches[0])

    # -- job.json ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "status": self.status,
            "config": self.config,
            "summary": self.summary,
            "pid": self.pid,
        }

    def _write(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.job_file, json.dumps(self.to_json(), indent=2, default=str) + "\n")

    def finish(self, status: str, summary: dict[str, Any]) -> None:
        """Set the final ``status`` and ``summary``; rewrite ``job.json`` atomically."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
        self.status = status
        self.summary = dict(summary)
        self.updated_at = _now()
        self._write()

    @property
    def effective_status(self) -> str:
        """``status``, except ``interrupted`` for a ``running`` job whose process is gone."""
        if self.status == "running" and not _pid_alive(self.pid):
            return "interrupted"
        return self.status

    def mark_running(self) -> None:
        """(Re)mark the record ``running`` under this process (a job starting or resuming)."""
        self.status = "running"
        self.pid = os.getpid()
        self.updated_at = _now()
        self._write()

    # -- wiring to a Job ---------------------------------------------------------------
    def attach(self, job: Any) -> None:
        """Record ``job``'s rollouts: stream steps as they happen, finalize each as it ends.

        Also (re)marks the record ``running`` under this process (for ``--resume``).
        """
        self.mark_running()
        job.on_start(self.start_trace)
        job.on_run(self._on_run)

    def _on_run(self, run: Any) -> None:
        # A full disk must not abort the whole batch: keep going, remember the failure.
        try:
            self.add_run(run)
        except OSError as exc:
            self.write_errors.append(f"{run.trace.trace_id}: {exc}")

    def start_trace(self, task: Any, trace: Any) -> None:
        """Begin the in-flight trace file of a rollout and append its steps as recorded."""
        trace_id = trace.trace_id
        if not trace_id:
            return
        self._started[trace_id] = time.monotonic()
        path = self.trace_path(trace_id)
        header = {
            "type": "trace",
            "trace_id": trace_id,
            "job_id": self.job_id,
            "group_index": trace.extra.get("group_index"),
            "slug": getattr(task, "slug", None),
            "task_id": getattr(task, "id", None),
            "args": getattr(task, "args", None),
            "status": None,
            "started_at": _now(),
        }
        try:
            self.traces_dir.mkdir(parents=True, exist_ok=True)
            # appears with its header or not at all (a SIGKILL between creating the file and
            # writing it left an empty trace file)
            _atomic_write(path, _dumps(header) + "\n", sync=False)
        except OSError:
            return
        trace.listen(self._on_step)

    def _on_step(self, trace: Any, step: Any) -> None:
        trace_id = trace.trace_id
        if not trace_id or trace_id in self._finalized:
            return
        with contextlib.suppress(Exception):
            _append_line(
                self.trace_path(trace_id), _dumps({"type": "step", **step_json(step)}), sync=False
            )

    def add_run(self, run: Any) -> RunRow:
        """Write the final ``traces/<trace_id>.jsonl``, then append the row to ``runs.jsonl``;
        returns the row."""
        trace = run.trace
        if not trace.trace_id:
            trace.trace_id = uuid.uuid4().hex
        trace_id = trace.trace_id
        self._finalized.add(trace_id)
        finished_at = _now()
        started = self._started.pop(trace_id, None)
        if started is not None:
            duration: float | None = round(time.monotonic() - started, 3)
        else:
            steps = trace.steps
            duration = _iso_seconds(steps[0].started_at, finished_at) if steps else None
        header = trace_header(run, duration, finished_at)
        record = TraceRecord(header=header, steps=list(trace.steps))
        lines = [_dumps(line) for line in record.lines()]
        self.traces_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.trace_path(trace_id), "\n".join(lines) + "\n")
        row = header.row()
        _append_line(self.runs_file, _dumps(row.model_dump(mode="json")))
        return row

    # -- reading -----------------------------------------------------------------------
    def finished_runs(self) -> list[dict[str, Any]]:
        """Rows of ``runs.jsonl`` in the order they finished (a torn last line is ignored)."""
        return list(_read_jsonl(self.runs_file))

    def rows(self) -> list[RunRow]:
        """`finished_runs` as typed rows (unreadable rows skipped)."""
        out = []
        for row in self.finished_runs():
            with contextlib.suppress(ValueError):
                out.append(RunRow.model_validate(row))
        return out

    def read_trace(self, trace_id: str) -> Trace:
        """The recorded trace ``trace_id`` as a `Trace`."""
        return read_trace(self.trace_path(trace_id))

    def done_counts(self, *, retry_errors: bool = False) -> dict[str, int]:
        """Slug -> finished rollouts (``cancelled`` ones excluded; errored ones too with
        ``retry_errors``)."""
        out: dict[str, int] = {}
        for row in self._done_rows(retry_errors):
            slug = str(row.get("slug"))
            out[slug] = out.get(slug, 0) + 1
        return out

    def done_indices(self, *, retry_errors: bool = False) -> dict[str, set[int]]:
        """Slug -> group indices already finished: ``skip(task, i)`` is
        ``i in done.get(task.slug, set())``."""
        out: dict[str, set[int]] = {}
        for row in self._done_rows(retry_errors):
            index = row.get("group_index")
            if isinstance(index, int):
                out.setdefault(str(row.get("slug")), set()).add(index)
        return out

    def _done_rows(self, retry_errors: bool) -> Iterator[dict[str, Any]]:
        for row in self.finished_runs():
            if row.get("status") == "cancelled":
                continue
            if retry_errors and (row.get("is_error") or row.get("status") == "error"):
                continue
            yield row

    def unfinished_traces(self) -> list[Path]:
        """Trace files without a ``runs.jsonl`` row (rollouts in flight or cut off)."""
        done = {row.get("trace_id") for row in self.finished_runs()}
        if not self.traces_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.traces_dir.glob("*.jsonl")
            if not p.name.startswith(".") and p.stem not in done
        )

    def summary_of_rows(self) -> JobSummary:
        """`JobSummary` over the finished rows (no timing)."""
        return JobSummary.of(self.rows())

    def stats(self) -> dict[str, Any]:
        """Figures for listings (`JobSummary`'s definitions): ``runs``, ``total``, ``errors``
        (``error_count``: rollouts left out of the reward), ``failed_mid_run`` (graded after a
        trace error), ``reward`` (``mean_reward_excluding_errors``, like `Job.reward`; None
        without any)."""
        summary = self.summary_of_rows()
        total = self.summary.get("total") or self.config.get("total")
        return {
            "runs": summary.run_count,
            "total": total if isinstance(total, int) else None,
            "errors": summary.error_count,
            "failed_mid_run": summary.failed_mid_run,
            "reward": summary.mean_reward_excluding_errors,
        }


def list_jobs(base_dir: Path = DEFAULT_JOBS_DIR) -> list[JobRecord]:
    """Every readable job under ``base_dir``, newest first."""
    base = Path(base_dir)
    if not base.is_dir():
        return []
    records = []
    for path in base.iterdir():
        if not (path / JOB_FILE).is_file():
            continue
        try:
            records.append(JobRecord.load(path))
        except ValueError:
            continue
    records.sort(key=lambda r: (r.created_at or "", r.job_id), reverse=True)
    return records


# -- finding and reading traces --------------------------------------------------------
def find_trace(
    trace_id: str, base_dir: Path = DEFAULT_JOBS_DIR, *, local_dir: Path | None = None
) -> Path:
    """The trace file of ``trace_id``: a path to a file, or an id (or unique prefix, dashes
    ignored) found under ``base_dir/*/traces/``, else in the span directory ``local_dir``.
    `LookupError` otherwise."""
    text = str(trace_id).strip()
    if not text:
        raise LookupError("empty trace id")
    as_path = Path(text).expanduser()
    if as_path.is_file():
        return as_path
    key = _norm_id(text)
    base = Path(base_dir)
    matches: list[Path] = []
    if base.is_dir():
        for job_dir in base.iterdir():
            traces = job_dir / TRACES_DIR
            if traces.is_dir():
                matches.extend(
                    p
                    for p in traces.glob("*.jsonl")
                    if not p.name.startswith(".") and _norm_id(p.stem).startswith(key)
                )
    if not matches and local_dir is not None and Path(local_dir).is_dir():
        from hud.telemetry.spans import normalize_trace_id

        exact = Path(local_dir) / f"{normalize_trace_id(text)}.jsonl"
        if exact.is_file():
            return exact
        matches = [p for p in Path(local_dir).glob("*.jsonl") if p.stem.startswith(key)]
    exact_hits = [p for p in matches if _norm_id(p.stem) == key]
    if len(exact_hits) == 1:
        return exact_hits[0]
    if not matches:
        where = str(base) + (f" or {local_dir}" if local_dir is not None else "")
        raise LookupError(f"no trace matching {trace_id!r} in {where}")
    if len(matches) > 1:
        names = ", ".join(sorted({p.stem for p in matches})[:5])
        raise LookupError(f"trace id {trace_id!r} is ambiguous: {names}")
    return matches[0]


def load_trace_file(path: Path) -> dict[str, Any]:
    """Read a trace file (ours, or a telemetry span file) into ``{"trace_id", "status",
    "stop_reason", "content", "reward", "grade", "steps": [step dicts], "format", ...}``."""
    path = Path(path)
    rows = list(_read_jsonl(path))
    if not rows:
        raise ValueError(f"{path} holds no trace (empty or unreadable)")
    if rows[0].get("type") == "trace":
        header = {k: v for k, v in rows[0].items() if k != "type"}
        steps = [
            {k: v for k, v in row.items() if k != "type"}
            for row in rows[1:]
            if row.get("type") == "step"
        ]
        data = {**header, "steps": steps, "format": "record"}
        data.setdefault("grade", None)
        data.setdefault("content", None)
        data.setdefault("stop_reason", None)
        if data.get("reward") is None and data["grade"] is None:
            _fill_grade(data)
        return data
    if "attributes" in rows[0] or "span_id" in rows[0]:
        return _from_spans(path, rows)
    raise ValueError(f"{path} is neither a hud trace record nor a telemetry span file")


def _evaluate_step(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    for step in reversed(steps):
        call = step.get("task_call")
        if (
            step.get("source") == "task"
            and isinstance(call, dict)
            and call.get("phase") == "evaluate"
        ):
            return step
    return None


def _fill_grade(data: dict[str, Any]) -> None:
    step = _evaluate_step(data["steps"])
    if step is None:
        return
    call = step["task_call"]
    frame = call.get("result")
    if isinstance(frame, dict):
        data["grade"] = frame
        score = frame.get("score")
        data["reward"] = float(score) if isinstance(score, (int, float)) else 0.0
    args = call.get("arguments")
    if data.get("content") is None and isinstance(args, dict):
        data["content"] = args.get("answer")


def _from_spans(path: Path, spans: list[dict[str, Any]]) -> dict[str, Any]:
    steps = []
    task_run_id = None
    for span in sorted(spans, key=lambda s: str(s.get("start_time") or "")):
        attrs = span.get("attributes") or {}
        if attrs.get("hud.schema") != "hud.step.v1":
            continue
        payload = attrs.get("hud.payload")
        if isinstance(payload, str):
            with contextlib.suppress(ValueError):
                payload = json.loads(payload)
        if not isinstance(payload, dict):
            continue
        task_run_id = task_run_id or attrs.get("hud.task_run_id")
        steps.append(payload)
    steps.sort(key=lambda s: s.get("step_id") or 0)
    setup = next(
        (
            s
            for s in steps
            if s.get("source") == "task" and (s.get("task_call") or {}).get("phase") == "setup"
        ),
        None,
    )
    call = (setup or {}).get("task_call") or {}
    error = next(
        (s.get("error") for s in reversed(steps) if s.get("source") == "system" and s.get("error")),
        None,
    )
    data: dict[str, Any] = {
        "trace_id": task_run_id or path.stem,
        "slug": None,
        "task_id": call.get("name"),
        "args": call.get("arguments"),
        "reward": None,
        "grade": None,
        "status": None,
        "stop_reason": None,
        "error": error,
        "content": None,
        "steps": steps,
        "format": "spans",
    }
    _fill_grade(data)
    if error:
        data["status"] = "error"
    elif data["grade"] is not None:
        data["status"] = "completed"
    return data


# -- events (hud trace) -------------------------------------------------------------------
def result_text(result: Any) -> str:
    """The text of a tool result dict: text blocks joined, other blocks summarized."""
    if not isinstance(result, dict):
        return "" if result is None else str(result)
    parts = []
    for block in result.get("content") or []:
        if not isinstance(block, dict):
            parts.append(str(block))
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            parts.append(f"[{block.get('type', 'content')}]")
    if not parts and result.get("structuredContent") is not None:
        parts.append(json.dumps(result["structuredContent"], default=str))
    return "\n".join(parts)


def messages_text(messages: Any) -> str:
    """Text of chat turns whose ``content`` is a string, a block or a list of blocks."""
    parts = []
    for turn in messages or []:
        if not isinstance(turn, dict):
            continue
        content = turn.get("content")
        blocks = content if isinstance(content, list) else [content]
        for block in blocks:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                elif block.get("type"):
                    parts.append(f"[{block['type']}]")
    return "\n\n".join(parts)


def trace_events(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of a loaded trace as render events (``hud trace --json``).

    Kinds: ``task`` (setup), ``prompt``, ``agent_message``, ``tool_call`` (call and result,
    G30), ``user_message`` (user turns after the first agent turn), ``system``, ``subagent``,
    ``grade``.
    """
    events: list[dict[str, Any]] = []
    seen_agent = False
    for step in data.get("steps") or []:
        source = step.get("source")
        if source == "agent":
            seen_agent = True
            events.append(
                {
                    "kind": "agent_message",
                    "step_id": step.get("step_id"),
                    "text": step.get("content"),
                    "reasoning": step.get("reasoning"),
                    "tool_calls": step.get("tool_calls") or [],
                    "error": step.get("error"),
                    "model": step.get("model"),
                    "extra": step.get("extra") or {},
                }
            )
        elif source == "tool":
            call = step.get("call") or {}
            result = step.get("result")
            events.append(
                {
                    "kind": "tool_call",
                    "step_id": step.get("step_id"),
                    "tool_name": call.get("name"),
                    "arguments": call.get("arguments") or {},
                    "result_text": result_text(result),
                    "is_error": bool(isinstance(result, dict) and result.get("isError")),
                    "error": step.get("error"),
                    "extra": step.get("extra") or {},
                }
            )
        elif source == "user":
            events.append(
                {
                    "kind": "user_message" if seen_agent else "prompt",
                    "step_id": step.get("step_id"),
                    "text": messages_text(step.get("messages")),
                }
            )
        elif source == "system":
            events.append(
                {
                    "kind": "system",
                    "step_id": step.get("step_id"),
                    "text": messages_text(step.get("messages")) or step.get("error"),
                    "error": step.get("error"),
                }
            )
        elif source == "subagent":
            sub = step.get("subagent") or {}
            events.append(
                {
                    "kind": "subagent",
                    "step_id": step.get("step_id"),
                    "trace_id": sub.get("trace_id"),
                    "steps": len(sub.get("steps") or []),
                    "error": step.get("error"),
                }
            )
        elif source == "task":
            events.append(_task_event(step))
    return events


def _task_event(step: dict[str, Any]) -> dict[str, Any]:
    call = step.get("task_call") or {}
    if call.get("phase") != "evaluate":
        return {
            "kind": "task",
            "step_id": step.get("step_id"),
            "task_id": call.get("name"),
            "args": call.get("arguments") or {},
            "error": step.get("error"),
        }
    result = call.get("result")
    frame: dict[str, Any] = result if isinstance(result, dict) else {}
    score = frame.get("score")
    return {
        "kind": "grade",
        "step_id": step.get("step_id"),
        "reward": float(score) if isinstance(score, (int, float)) else None,
        "answer": (call.get("arguments") or {}).get("answer"),
        "content": frame.get("content"),
        "subscores": frame.get("subscores"),
        "info": frame.get("info"),
        "is_error": bool(frame.get("isError")),
        "error": step.get("error"),
    }
