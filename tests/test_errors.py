"""Every exception the library defines derives from `hud.HudError` (the CLI's own excepted)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import hud
from hud import HudError
from hud.protocol import HudProtocolError


def _library_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(hud.__path__, "hud."):
        if info.name.startswith("hud.cli") or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


def test_every_library_exception_is_a_hud_error() -> None:
    strays = []
    for name in _library_modules():
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional dependency is missing: nothing to check there
            continue
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not attr.startswith("_")
                and not issubclass(value, HudError)
            ):
                strays.append(f"{name}.{attr}")
    assert not strays, f"exceptions not deriving from hud.HudError: {strays}"


def test_rpc_errors_are_hud_errors_and_keep_their_builtin_bases() -> None:
    from hud.environment.loader import LoadError
    from hud.eval.runtimes.docker import DockerError

    assert issubclass(HudProtocolError, HudError)
    assert issubclass(LoadError, ValueError) and issubclass(LoadError, HudError)
    assert issubclass(DockerError, RuntimeError) and issubclass(DockerError, HudError)
