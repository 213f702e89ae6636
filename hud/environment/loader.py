"""Finding and importing environments from files, directories and modules."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hud.environment.environment import Environment
from hud.environment.template import Template
from hud.protocol.errors import HudError

log = logging.getLogger("hud.environment")

SKIPPED_FILES = {"conftest.py", "setup.py", "__init__.py", "__main__.py"}


class LoadError(HudError, ValueError):
    """An environment or task source could not be loaded (message is user-facing)."""


def _ensure_on_path(directory: Path) -> None:
    """Put ``directory`` first on ``sys.path`` so sibling imports resolve next to the file."""
    d = str(directory)
    if sys.path and sys.path[0] == d:
        return
    if d in sys.path:
        sys.path.remove(d)
    sys.path.insert(0, d)


def _module_dir(module: ModuleType) -> str | None:
    file = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(file)) if file else None


def forget_directory(directory: Path) -> None:
    """Drop cached top-level modules loaded from ``directory`` so the next import is fresh."""
    where = str(directory.resolve())
    for name, module in list(sys.modules.copy().items()):
        if "." not in name and _module_dir(module) == where:
            del sys.modules[name]


def _drop_foreign_siblings(directory: Path) -> None:
    """Forget cached modules named like a sibling file of ``directory`` but loaded elsewhere.

    Without this, ``from env import env`` in ``B/tasks.py`` would reuse ``A/env.py``.
    """
    where = str(directory)
    for entry in os.scandir(where):
        stem, ext = os.path.splitext(entry.name)
        if ext != ".py" or stem in sys.stdlib_module_names:
            continue
        cached = sys.modules.get(stem)
        if cached is not None:
            found = _module_dir(cached)
            if found is not None and found != where:
                del sys.modules[stem]


def import_file(path: Path) -> ModuleType:
    """Import ``path`` under its own module name, so sibling imports see the same module."""
    path = path.resolve()
    _drop_foreign_siblings(path.parent)
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        file = getattr(existing, "__file__", None)
        if file and os.path.abspath(file) == str(path):
            return existing
        if file is None or name in sys.stdlib_module_names:
            name = f"_hud_src_{abs(hash(str(path))):x}_{name}"
    _ensure_on_path(path.parent)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def source_files(path: Path) -> list[Path]:
    """The ``.py`` files a path stands for: itself, or a directory's top-level modules."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.py") if p.name not in SKIPPED_FILES)
    return [path]


def import_modules(path: Path, *, strict_single: bool = True) -> list[ModuleType]:
    """Import a file (errors propagate) or each module of a directory (failures skipped)."""
    if path.is_file():
        return [import_file(path)]
    modules = []
    for file in source_files(path):
        try:
            modules.append(import_file(file))
        except Exception as exc:
            log.warning("skipped %s: %s: %s", file, type(exc).__name__, exc)
    return modules


def environments_in(modules: list[ModuleType]) -> list[tuple[str, Environment]]:
    """Every `Environment` bound at module level, each object once (first attribute name)."""
    seen: dict[int, tuple[str, Environment]] = {}
    for module in modules:
        for attr, value in vars(module).items():
            if isinstance(value, Environment) and id(value) not in seen:
                seen[id(value)] = (attr, value)
    return list(seen.values())


def _select(found: list[tuple[str, Environment]], name: str | None, where: Path) -> Environment:
    if name is not None:
        found = [(a, e) for a, e in found if a == name or e.name == name]
        unique = {id(e): e for _, e in found}
        if not unique:
            raise LoadError(f"no Environment named '{name}' found in {where}")
        if len(unique) > 1:
            raise LoadError(f"multiple Environments named '{name}' in {where}")
        return next(iter(unique.values()))
    if not found:
        raise LoadError(f"no Environment found in {where}")
    if len(found) > 1:
        names = ", ".join(sorted(e.name for _, e in found))
        raise LoadError(f"multiple Environments in {where} ({names}); select one by name")
    return found[0][1]


def resolve_target(target: str | Path) -> tuple[Path | None, str | None, str]:
    """Split a target into (existing path, attribute name, module text)."""
    text = str(target)
    path = Path(text)
    if text == "env" and not path.exists() and Path("env.py").exists():
        return Path("env.py"), None, text
    if path.exists():
        return path, None, text
    if ":" in text:
        head, _, attr = text.rpartition(":")
        head_path = Path(head)
        if head_path.exists():
            return head_path, attr or None, head
        if not head_path.suffix and Path(head + ".py").exists():
            return Path(head + ".py"), attr or None, head
        return None, attr or None, head
    if not path.suffix and Path(text + ".py").exists():
        return Path(text + ".py"), None, text
    return None, None, text


def load_environment(
    target: str | Path = "env", *, name: str | None = None, args: dict[str, Any] | None = None
) -> Environment:
    """Load an `Environment` from a file, a directory or ``module[:attribute]``."""
    path, attr, module_name = resolve_target(target)
    name = name or attr
    if path is not None and not (path.is_dir() and (path / "__init__.py").exists() and args):
        if args:
            raise LoadError("args can only be passed to a factory target (module:function)")
        if path.suffix != ".py" and not path.is_dir():
            raise LoadError(f"{path} is not a .py file or a directory")
        try:
            modules = import_modules(path)
        except LoadError:
            raise
        except SyntaxError as exc:
            raise LoadError(f"syntax error in {exc.filename}:{exc.lineno}: {exc.msg}") from exc
        except Exception as exc:
            raise LoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
        found = environments_in(modules)
        if name is not None and path.is_file():
            named = [e for a, e in found if name in (a, e.name)]
            value = getattr(modules[0], name, None)
            factory = callable(value) and not isinstance(value, (type, Template))
            if not named and factory:
                return _call_factory(value, args, f"{path}:{name}")
        return _select(found, name, path)
    if path is None and ("/" in module_name or module_name.endswith(".py")):
        raise LoadError(f"{module_name} does not exist")
    if path is not None:
        _ensure_on_path(path.parent.resolve())
        module_name = path.name
    _ensure_on_path(Path.cwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name.split(".")[0] or exc.name == module_name:
            where = Path.cwd()
            raise LoadError(
                f"cannot find '{module_name}': no such file or module (looked in {where})"
            ) from exc
        raise LoadError(f"importing {module_name} failed: {exc}") from exc
    except Exception as exc:
        raise LoadError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    attr_name = name or "env"
    if not hasattr(module, attr_name):
        raise LoadError(f"module '{module_name}' has no attribute '{attr_name}'")
    value = getattr(module, attr_name)
    if isinstance(value, Environment):
        if args:
            raise LoadError(f"{module_name}:{attr_name} is an Environment; it takes no args")
        return value
    if callable(value):
        return _call_factory(value, args, f"{module_name}:{attr_name}")
    raise LoadError(f"{module_name}:{attr_name} is not an Environment")


def _call_factory(factory: Any, args: dict[str, Any] | None, where: str) -> Environment:
    try:
        result = factory(**(args or {}))
    except TypeError as exc:
        raise LoadError(f"calling {where} failed: {exc}") from exc
    if not isinstance(result, Environment):
        raise LoadError(f"{where} returned {type(result).__name__}, not an Environment")
    return result
