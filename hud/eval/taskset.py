"""`Taskset`: an ordered, slug-keyed collection of `Task` rows, loaded from and saved to files."""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import ItemsView, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hud.environment.loader import LoadError, import_modules
from hud.eval.runtime_config import RuntimeConfig
from hud.eval.task import Task
from hud.protocol.errors import HudError

if TYPE_CHECKING:
    from hud.eval.agent import AgentProtocol
    from hud.eval.runtime import Provider

log = logging.getLogger("hud.eval")

#: Files of task rows (`Taskset.from_file` reads them, `Taskset.to_file` writes them).
ROW_FILE_SUFFIXES = (".json", ".jsonl")

#: Row keys a `Task` understands; anything else in a task file is reported as unknown (G16).
TASK_KEYS = frozenset(Task.model_fields)

_JSON_KINDS = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
_SHOWN = 8  # how many slugs an error message lists


class TaskNotFoundError(HudError, KeyError, ValueError):
    """No task matches a slug, id or index (a `KeyError` and a `ValueError`)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Taskset:
    """Tasks keyed by slug, in insertion order."""

    def __init__(
        self,
        name: str | None = None,
        tasks: Iterable[Task] = (),
        *,
        taskset_id: str | None = None,
    ) -> None:
        self.name: str = name or "taskset"
        self.taskset_id: str | None = taskset_id
        self.tasks: dict[str, Task] = {}
        dupes: dict[str, int] = {}
        for task in tasks:
            if not isinstance(task, Task):
                raise TypeError(f"Taskset items must be Task, got {type(task).__name__}")
            if task.slug in self.tasks:
                dupes[task.slug] = dupes.get(task.slug, 1) + 1
                continue
            self.tasks[task.slug] = task
        if dupes:
            listed = ", ".join(f"{slug} (x{n})" for slug, n in dupes.items())
            raise ValueError(f"duplicate task slugs: {listed}; give each row its own slug")

    # -- container protocol ----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(list(self.tasks.values()))

    def __contains__(self, slug: object) -> bool:
        return slug in self.tasks

    def __getitem__(self, slug: str) -> Task:
        try:
            return self.tasks[slug]
        except KeyError:
            raise self._not_found(f"no task with slug {slug!r} in {self.name!r}", slug) from None

    def __repr__(self) -> str:
        return f"Taskset({self.name!r}, {len(self)} tasks)"

    def items(self) -> ItemsView[str, Task]:
        """``(slug, task)`` pairs in order."""
        return self.tasks.items()

    @property
    def slugs(self) -> list[str]:
        return list(self.tasks)

    def environment_names(self) -> set[str]:
        """Names of the environments rows (and their verifiers) refer to."""
        names = set()
        for task in self.tasks.values():
            names.add(task.env)
            if task.verifier is not None:
                names.add(task.verifier.env)
        return names

    # -- subsets ---------------------------------------------------------------------
    def _derive(self, tasks: Iterable[Task]) -> Taskset:
        return Taskset(self.name, tasks, taskset_id=self.taskset_id)

    def filter(self, slugs: Iterable[str]) -> Taskset:
        """The rows whose slug is in ``slugs`` (taskset order; unknown slugs ignored)."""
        keep = {slugs} if isinstance(slugs, str) else set(slugs)
        return self._derive(t for t in self.tasks.values() if t.slug in keep)

    def exclude(self, slugs: Iterable[str]) -> Taskset:
        """The rows whose slug is not in ``slugs``."""
        drop = {slugs} if isinstance(slugs, str) else set(slugs)
        return self._derive(t for t in self.tasks.values() if t.slug not in drop)

    def select(self, tokens: list[str] | str) -> Taskset:
        """Apply the ``--task-ids`` rule.

        Tokens are comma-separated and trimmed; each matches rows by slug, by template id (all
        rows of that template) or by 0-based index. Taskset order is kept, each row once.
        """
        if isinstance(tokens, str):
            tokens = [tokens]
        wanted = [part.strip() for token in tokens for part in str(token).split(",")]
        wanted = [w for w in wanted if w]
        if not wanted:
            raise ValueError("no task ids given")
        rows = list(self.tasks.values())
        chosen: set[int] = set()
        for token in wanted:
            hits = [i for i, t in enumerate(rows) if token in (t.slug, t.id, str(i))]
            if not hits:
                raise self._not_found(f"no task matching {token!r}", token)
            chosen.update(hits)
        return self._derive(rows[i] for i in sorted(chosen))

    def find(self, token: str | int) -> Task:
        """One task: by slug, else the first row of that template id, else by 0-based index."""
        text = str(token).strip()
        if text in self.tasks:
            return self.tasks[text]
        rows = list(self.tasks.values())
        for task in rows:
            if task.id == text:
                return task
        if text.isascii() and text.isdigit() and int(text) < len(rows):
            return rows[int(text)]
        raise self._not_found(f"no task matching {text!r}", text)

    def _not_found(self, head: str, token: str) -> TaskNotFoundError:
        slugs = list(self.tasks)
        if not slugs:
            return TaskNotFoundError(f"{head} (the taskset is empty)")
        shown = ", ".join(slugs[:_SHOWN])
        if len(slugs) > _SHOWN:
            shown += f", ... ({len(slugs) - _SHOWN} more)"
        close = difflib.get_close_matches(token, slugs + sorted({t.id for t in self}), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return TaskNotFoundError(f"{head} (available: {shown}){hint}")

    # -- loading ---------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, *, strict: bool = False) -> Taskset:
        """Load ``.json``/``.jsonl`` rows, or scan a ``.py`` file or directory (`from_module`).

        Relative compose paths resolve against the file's directory. Unknown row keys are
        dropped with one warning per file, or rejected with ``strict=True``.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if path.is_dir() or suffix == ".py":
            return cls.from_module(path)
        if suffix not in ROW_FILE_SUFFIXES:
            raise LoadError(
                f"cannot load tasks from {path}: expected a .json, .jsonl or .py file "
                "or a directory"
            )
        if not path.is_file():
            raise LoadError(f"{path}: no such file")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise LoadError(f"{path}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise LoadError(f"{path}: cannot read: {exc.strerror or exc}") from None
        rows = _jsonl_rows(path, text) if suffix == ".jsonl" else _json_rows(path, text)

        base = path.resolve().parent
        source = str(path.resolve())
        tasks: list[Task] = []
        unknown: set[str] = set()
        seen: dict[str, list[str]] = {}
        for where, row in rows:
            extra = _unknown_keys(row)
            if extra and strict:
                noun = "key" if len(extra) == 1 else "keys"
                listed = ", ".join(repr(k) for k in extra)
                raise LoadError(f"{where}: unknown {noun} {listed} (strict mode)")
            unknown.update(extra)
            task = _validate_row(row, where)
            _resolve_paths(task, base)
            task._source = source
            tasks.append(task)
            seen.setdefault(task.slug, []).append(where.removeprefix(f"{path} "))
        dupes = {slug: places for slug, places in seen.items() if len(places) > 1}
        if dupes:
            listed = "; ".join(f"{slug} ({', '.join(places)})" for slug, places in dupes.items())
            raise LoadError(f'{path}: duplicate task slugs: {listed}; give each row its own "slug"')
        if unknown:
            log.warning("%s: ignoring unknown task keys: %s", path, ", ".join(sorted(unknown)))
        return cls(path.stem, tasks)

    @classmethod
    def from_module(cls, path: str | Path) -> Taskset:
        """Collect the `Task` rows bound at module level in a ``.py`` file or a directory.

        Public attributes holding a `Task`, a `Taskset` or a list/tuple of Tasks are collected
        in source order (directories: modules by file name); an object bound twice counts once.
        """
        path = Path(path)
        if not path.exists():
            raise LoadError(f"{path}: no such file or directory")
        if path.is_file() and path.suffix != ".py":
            raise LoadError(f"{path} is not a .py file or a directory")
        try:
            modules = import_modules(path)
        except LoadError:
            raise
        except SyntaxError as exc:
            raise LoadError(f"syntax error in {exc.filename}:{exc.lineno}: {exc.msg}") from exc
        except Exception as exc:
            raise LoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc

        seen: set[int] = set()
        tasks: list[Task] = []
        for module in modules:
            source = getattr(module, "__file__", None)
            for attr, value in list(vars(module).items()):
                if attr.startswith("_"):
                    continue
                for task in _tasks_in(value):
                    if id(task) in seen:
                        continue
                    seen.add(id(task))
                    task._source = source
                    tasks.append(task)
        name = path.stem if path.is_file() else path.resolve().name
        try:
            return cls(name, tasks)
        except ValueError as exc:
            raise LoadError(f"{path}: {exc}") from None

    # -- saving ----------------------------------------------------------------------
    def to_file(self, path: str | Path) -> Path:
        """Write the rows as ``.json`` (indented list) or ``.jsonl``; None fields omitted.

        Compose paths are written relative to the output file's directory.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in ROW_FILE_SUFFIXES:
            raise ValueError(f"cannot write tasks to {path}: use a .json or .jsonl file name")
        out_dir = path.parent.resolve()
        rows = [_row(task, out_dir) for task in self.tasks.values()]
        if suffix == ".json":
            text = json.dumps(rows, indent=2) + "\n"
        else:
            text = "".join(json.dumps(row) + "\n" for row in rows)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    # -- running ---------------------------------------------------------------------
    async def run(
        self,
        agent: AgentProtocol,
        *,
        runtime: str | Provider | None = None,
        group: int | None = None,
        max_concurrent: int | None = None,
        job: Any = None,
        rollout_timeout: float | None = None,
        skip: Any = None,
        record: Any = None,
        on_event: Any = None,
    ) -> Any:
        """Run every task ``group`` times with ``agent``; returns the `Job`.

        This is `hud.eval.run_job` (placement ``"auto"`` unless ``runtime`` is given; see
        there): ``record`` (a `JobRecord` or a jobs directory) writes the job record ``hud
        eval`` writes, ``on_event`` watches the job. ``skip(task, index)`` returning True
        leaves that rollout out.
        """
        from hud.eval.runner import run_job

        result = await run_job(
            self,
            agent,
            placement=runtime if runtime is not None else "auto",
            group=group,
            max_concurrent=max_concurrent,
            job=job,
            rollout_timeout=rollout_timeout,
            skip=skip,
            record=record,
            on_event=on_event,
        )
        return result.job


# -- helpers -------------------------------------------------------------------------
def _kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _jsonl_rows(path: Path, text: str) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    # Only "\n" ends a row (str.splitlines would also cut at U+2028, U+0085, form feeds... that a
    # JSON string may hold raw).
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoadError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(value, dict):
            raise LoadError(f"{where}: expected a JSON object, got {_kind(value)}")
        rows.append((where, value))
    return rows


def _json_rows(path: Path, text: str) -> list[tuple[str, Any]]:
    if not text.strip():
        raise LoadError(f"{path}: file is empty (expected a JSON object or array of objects)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if isinstance(value, dict):
        return [(str(path), value)]
    if not isinstance(value, list):
        raise LoadError(f"{path}: expected a JSON object or array of objects, got {_kind(value)}")
    rows: list[tuple[str, Any]] = []
    for index, item in enumerate(value):
        where = f"{path} index {index}"
        if not isinstance(item, dict):
            raise LoadError(f"{where}: expected a JSON object, got {_kind(item)}")
        rows.append((where, item))
    return rows


def _unknown_keys(row: dict[str, Any]) -> list[str]:
    extra = [k for k in row if k not in TASK_KEYS]
    verifier = row.get("verifier")
    if isinstance(verifier, dict):
        extra += [f"verifier.{k}" for k in verifier if k not in TASK_KEYS]
    return extra


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _explain(exc: ValidationError) -> str:
    """Pydantic errors as one readable line: ``'id' is required; 'args': ...``."""
    parts: list[str] = []
    for err in exc.errors(include_url=False):
        field = _field(err["loc"])
        kind = err["type"]
        if kind == "missing":
            part = f"'{field}' is required"
        elif kind == "extra_forbidden":
            part = f"unknown field '{field}'"
        else:
            msg = str(err["msg"])
            for prefix in ("Value error, ", "Assertion failed, "):
                msg = msg.removeprefix(prefix)
            part = f"'{field}': {msg}" if field else msg
        if part not in parts:
            parts.append(part)
    if len(parts) > 3:
        parts = [*parts[:3], f"(+{len(parts) - 3} more)"]
    return "; ".join(parts)


def _validate_row(row: dict[str, Any], where: str) -> Task:
    try:
        return Task.model_validate(row)
    except ValidationError as exc:
        raise LoadError(f"{where}: {_explain(exc)}") from None


def _resolve_paths(task: Task, base: Path) -> None:
    if task.runtime_config is not None:
        task.runtime_config = task.runtime_config.resolved(base)
    if task.verifier is not None and task.verifier.runtime_config is not None:
        task.verifier.runtime_config = task.verifier.runtime_config.resolved(base)


def _tasks_in(value: Any) -> list[Task]:
    if isinstance(value, Task):
        return [value]
    if isinstance(value, Taskset):
        return list(value)
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, Task)]
    return []


def _relative(value: str, out_dir: Path) -> str:
    target = Path(value) if Path(value).is_absolute() else Path.cwd() / value
    try:
        return os.path.relpath(target, out_dir)
    except ValueError:  # another drive (Windows)
        return str(target)


def _runtime_row(config: RuntimeConfig, out_dir: Path) -> dict[str, Any]:
    data = config.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    compose = data.get("compose")
    if isinstance(compose, dict):
        for key in ("document", "root"):
            if isinstance(compose.get(key), str):
                compose[key] = _relative(compose[key], out_dir)
    return data


def _row(task: Task, out_dir: Path) -> dict[str, Any]:
    row = task.to_row()
    if task.runtime_config is not None:
        row["runtime_config"] = _runtime_row(task.runtime_config, out_dir)
    if task.verifier is not None:
        row["verifier"] = _row(task.verifier, out_dir)
    return row
