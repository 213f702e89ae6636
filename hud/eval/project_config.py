"""Project defaults for ``hud eval``, read from the working directory.

Two places, the first found wins: ``.hud_eval.toml`` (the reference's file name and layout)
and the ``[tool.hud]`` table of ``pyproject.toml``. Nothing is ever written implicitly.

Sections:

* ``[eval]``: run settings (``source``, ``agent``, ``model``, ``task_ids``, ``all``, ``full``,
  ``group_size``, ``max_concurrent``, ``max_steps``, ``runtime``, ``rollout_timeout``, ...).
* ``[agent]``: settings for whichever agent is selected (``system_prompt``, ``temperature``,
  ``base_url``, ``model``, ...).
* ``[claude]``, ``[openai]``, ``[gemini]``, ``[openai_compatible]`` (or any agent name):
  settings for that agent only, on top of ``[agent]``.

String values may use ``${VAR}``, filled from the process environment, ``./.env`` or
``~/.hud/.env`` (empty when unset). Command-line flags always win over the file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hud.protocol.errors import HudError

__all__ = [
    "EVAL_KEYS",
    "PROJECT_CONFIG_NAME",
    "ProjectConfig",
    "ProjectConfigError",
    "find_project_config",
    "load_project_config",
]

PROJECT_CONFIG_NAME = ".hud_eval.toml"

#: ``[eval]`` keys and the types they accept.
EVAL_KEYS: dict[str, tuple[type, ...]] = {
    "source": (str,),
    "agent": (str,),
    "model": (str,),
    "task_ids": (str, list),
    "all": (bool,),
    "full": (bool,),
    "group_size": (int,),
    "group": (int,),
    "max_concurrent": (int,),
    "max_steps": (int,),
    "runtime": (str,),
    "rollout_timeout": (int, float),
    "verbose": (bool,),
    "very_verbose": (bool,),
    "auto_respond": (bool,),
    "remote": (bool,),
    "gateway": (bool,),
}
_POSITIVE = {"group_size", "group", "max_concurrent", "max_steps", "rollout_timeout"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TYPE_NAMES = {str: "a string", list: "a list", bool: "true or false", int: "an integer"}


class ProjectConfigError(HudError, ValueError):
    """The project config file cannot be used; the message names the file and the fix."""


@dataclass
class ProjectConfig:
    """The parsed file: ``[eval]`` settings and agent sections (``${VAR}`` already filled)."""

    path: Path
    eval: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Things ignored in the file (unknown keys), one line each, for the CLI to show.
    warnings: list[str] = field(default_factory=list)

    def agent_settings(self, names: Iterable[str]) -> dict[str, Any]:
        """``[agent]``, then each section of ``names`` in order (later ones win)."""
        out: dict[str, Any] = dict(self.sections.get("agent", {}))
        for name in names:
            if name != "agent":
                out.update(self.sections.get(name.lower(), {}))
        return out

    @property
    def task_ids(self) -> str | None:
        """``[eval] task_ids`` as the CLI's comma-separated form."""
        value = self.eval.get("task_ids")
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return value


def find_project_config(cwd: Path | None = None) -> Path | None:
    """The project config in ``cwd``: ``.hud_eval.toml``, else a ``pyproject.toml`` with a
    ``[tool.hud]`` table; None if neither."""
    cwd = cwd or Path.cwd()
    own = cwd / PROJECT_CONFIG_NAME
    if own.is_file():
        return own
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None  # not ours to judge unless it has a [tool.hud] table we can read
        if isinstance(data.get("tool"), dict) and "hud" in data["tool"]:
            return pyproject
    return None


def load_project_config(
    path: Path, lookup: Callable[[str], str | None] | None = None
) -> ProjectConfig:
    """Parse ``path``; ``lookup(name) -> str | None`` fills ``${VAR}`` (default: hud settings).

    Raises `ProjectConfigError` for unreadable TOML or values of the wrong type.
    """
    if lookup is None:
        from hud.settings import get_setting

        lookup = get_setting
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProjectConfigError(f"{path.name}: invalid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectConfigError(f"{path.name}: cannot be read ({exc})") from None
    where = path.name
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("hud", {})
        where = "pyproject.toml [tool.hud]"
        if not isinstance(data, dict):
            raise ProjectConfigError(f"{where} must be a table")
    config = ProjectConfig(path=path)
    for name, table in data.items():
        if not isinstance(table, dict):
            config.warnings.append(f"{where}: top-level key {name!r} ignored (expected sections)")
            continue
        filled = {key: _fill(value, lookup) for key, value in table.items()}
        if name == "eval":
            config.eval = _check_eval(filled, where, config.warnings)
        else:
            config.sections[name.lower()] = filled
    return config


def _fill(value: Any, lookup: Callable[[str], str | None]) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: lookup(m.group(1)) or "", value)
    if isinstance(value, list):
        return [_fill(v, lookup) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, lookup) for k, v in value.items()}
    return value


def _check_eval(table: dict[str, Any], where: str, warnings: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        types = EVAL_KEYS.get(key)
        if types is None:
            known = ", ".join(sorted(EVAL_KEYS))
            warnings.append(f"{where}: [eval] key {key!r} ignored (known keys: {known})")
            continue
        # bool is an int to isinstance: true/false only where booleans are asked for
        if not isinstance(value, types) or (type(value) is bool and bool not in types):
            wanted = " or ".join(_TYPE_NAMES.get(t, "a number") for t in types)
            raise ProjectConfigError(
                f"{where}: [eval] {key} must be {wanted}, got {value!r}; fix or remove the line"
            )
        if key in _POSITIVE and isinstance(value, (int, float)) and value <= 0:
            raise ProjectConfigError(f"{where}: [eval] {key} must be > 0, got {value!r}")
        out[key] = value
    if "group" in out:
        out.setdefault("group_size", out.pop("group"))
    return out
