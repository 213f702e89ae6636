"""`hud set KEY=VALUE`: persist settings to ~/.hud/.env."""

from __future__ import annotations

import re

import typer

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HINT = "pass KEY=VALUE pairs, e.g. hud set HUD_API_KEY=... (quote values with spaces)"


def _shown(text: str) -> str:
    """``text`` when it looks like a variable name, else a stub (it may be a secret)."""
    return text if _KEY_RE.fullmatch(text) else f"{text[:3]}…"


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """Split ``KEY=VALUE`` arguments (later duplicates win); raise `CLIError` on a bad one."""
    from hud.cli.errors import CLIError

    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise CLIError(f"malformed '{_shown(pair)}': expected KEY=VALUE", hint=_HINT)
        if not _KEY_RE.fullmatch(key):
            raise CLIError(
                f"malformed '{key}=…': expected KEY=VALUE",
                hint="KEY must be a variable name (letters, digits and '_', not starting "
                "with a digit)",
            )
        out[key] = value
    return out


def set_command(pairs: list[str] = typer.Argument(..., help="KEY=VALUE pairs")) -> None:
    """Save settings (API keys, defaults) to ~/.hud/.env."""
    import os

    from rich.markup import escape

    from hud.cli.output import console, warn
    from hud.settings import read_dotenv, write_user_settings

    values = parse_pairs(pairs)
    path = write_user_settings(values)
    keys = sorted(values)
    console().print(f"Saved {', '.join(keys)} to {escape(str(path))} (mode 0600)")
    local = read_dotenv(".env")
    for key in keys:
        if key in os.environ:
            warn(f"{key} is also set in the environment, which takes precedence")
        elif key in local:
            warn(f"{key} is also set in ./.env, which takes precedence")
