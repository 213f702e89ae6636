"""Task templates: async generators that yield a prompt, receive an answer, yield a reward."""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, TypeAdapter, create_model

from hud.protocol.errors import HudError
from hud.types.task import Task

if TYPE_CHECKING:
    from hud.environment.environment import Environment

_SKIP = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class Template:
    """A registered template; calling it mints a `Task` row bound to its arguments."""

    def __init__(
        self,
        env: Environment,
        func: Callable[..., AsyncGenerator[Any, Any]],
        *,
        id: str,
        description: str = "",
        input: Any = None,
        returns: Any = None,
        solution: Any = None,
    ) -> None:
        self.env = env
        self.func = func
        self.id = id
        self.description = description
        self.input_type = input
        self.return_type = returns
        self.solution = solution
        self.sig = inspect.signature(func)
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", id)
        self.__wrapped__ = func
        self._hints: dict[str, Any] | None = None
        self._adapters: dict[str, TypeAdapter[Any] | None] = {}
        self._manifest: dict[str, Any] | None = None

    # -- minting rows ----------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        """Bind to the signature (defaults are *not* applied, so slugs stay stable)."""
        bound = self.sig.bind(*args, **kwargs)
        row_args: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            # *args and **kwargs stay under their own names (a list and a dict), as in HUD.
            kind = self.sig.parameters[name].kind
            row_args[name] = list(value) if kind is inspect.Parameter.VAR_POSITIONAL else value
        task = Task(env=self.env.name, id=self.id, args=row_args)
        task._env = self.env
        return task

    def __repr__(self) -> str:
        return f"<Template {self.id!r} of {self.env.name!r}>"

    # -- manifest --------------------------------------------------------------------
    @property
    def hints(self) -> dict[str, Any]:
        if self._hints is None:
            try:
                self._hints = typing.get_type_hints(self.func, include_extras=True)
            except Exception:
                self._hints = {
                    n: p.annotation
                    for n, p in self.sig.parameters.items()
                    if p.annotation is not inspect.Parameter.empty
                }
        return self._hints

    @property
    def accepts_extra(self) -> bool:
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in self.sig.parameters.values())

    def args_schema(self) -> dict[str, Any]:
        """JSON schema of the arguments, as published in ``tasks.list``."""
        fields: dict[str, Any] = {}
        for name, param in self.sig.parameters.items():
            if param.kind in _SKIP:
                continue
            annotation = self.hints.get(name, Any)
            default = ... if param.default is inspect.Parameter.empty else param.default
            if name.startswith("_") or hasattr(BaseModel, name):
                title = name.title().replace("_", " ")
                fields[f"field_{len(fields)}"] = (
                    annotation,
                    Field(default, alias=name, title=title),
                )
            else:
                fields[name] = (annotation, default)
        model = create_model("TaskArgs", **fields)
        schema = model.model_json_schema(by_alias=True)
        schema.pop("title", None)
        if not schema.get("required"):
            schema.pop("required", None)
        schema["additionalProperties"] = self.accepts_extra
        return schema

    def manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            entry: dict[str, Any] = {
                "id": self.id,
                "description": self.description,
                "args": self.args_schema(),
            }
            if self.input_type is not None:
                entry["input"] = TypeAdapter(self.input_type).json_schema()
            if self.return_type is not None:
                entry["returns"] = TypeAdapter(self.return_type).json_schema()
            self._manifest = entry
        return self._manifest

    # -- running ---------------------------------------------------------------------
    def _adapter(self, name: str) -> TypeAdapter[Any] | None:
        if name not in self._adapters:
            annotation = self.hints.get(name)
            param = self.sig.parameters.get(name)
            if annotation is None or annotation is Any or param is None or param.kind in _SKIP:
                self._adapters[name] = None
            else:
                try:
                    self._adapters[name] = TypeAdapter(annotation)
                except Exception:
                    self._adapters[name] = None
        return self._adapters[name]

    def warm(self) -> None:
        """Precompute type hints and validators (done once before forking workers)."""
        for name in self.sig.parameters:
            self._adapter(name)

    def coerce(self, args: dict[str, Any]) -> dict[str, Any]:
        """Validate each supplied argument as its annotated type; JSON text is tried next."""
        out: dict[str, Any] = {}
        for name, value in args.items():
            adapter = self._adapter(name)
            if adapter is None:
                out[name] = value
                continue
            try:
                out[name] = adapter.validate_python(value)
                continue
            except Exception:
                pass
            if isinstance(value, str):
                try:
                    out[name] = adapter.validate_json(value)
                    continue
                except Exception:
                    pass
            out[name] = value
        return out

    def open(self, args: dict[str, Any]) -> AsyncGenerator[Any, Any]:
        """Bind ``args`` and create the generator. Raises TypeError on unbindable args."""
        coerced = self.coerce(args)
        try:
            bound = self.sig.bind(**coerced)
        except TypeError as exc:
            raise BadArgs(self.id, sorted(args), str(exc)) from None
        return self.func(*bound.args, **bound.kwargs)


class BadArgs(HudError, TypeError):
    """Arguments that do not fit a template's signature."""

    def __init__(self, task_id: str, names: list[str], detail: str) -> None:
        super().__init__(f"task '{task_id}': bad args {names!r}: {detail}")
