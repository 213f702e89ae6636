"""Settings: explicit kwargs > process env > ``./.env`` > ``~/.hud/.env`` (``hud set``).

Imported at CLI start-up; ``.env`` files are parsed with python-dotenv (imported on first
read). A key defined by a higher-precedence source wins even when its value is empty
(``HUD_API_KEY=`` in the process environment hides a saved key); the typed properties treat
empty values as unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULTS",
    "Settings",
    "get_setting",
    "parse_dotenv",
    "read_dotenv",
    "reload",
    "settings",
    "user_env_path",
    "write_user_settings",
]

#: Documented defaults (cli.md Appendix A); keys without a default are unset unless configured.
DEFAULTS: dict[str, str] = {
    "HUD_API_URL": "https://api.hud.ai",
    "HUD_WEB_URL": "https://hud.ai",
    "HUD_GATEWAY_URL": "https://inference.hud.ai",
    "HUD_RUNTIME_URL": "https://mcp.hud.ai",
    "HUD_RL_URL": "https://rl.hud.ai",
    "HUD_TELEMETRY_URL": "https://telemetry.hud.ai/v3/api",
    "HUD_TELEMETRY_ENABLED": "true",
    "HUD_CLI_ANALYTICS_ENABLED": "true",
    "HUD_FILE_TRACKING_ENABLED": "true",
    "HUD_FILE_TRACKING_INTERVAL": "2.0",
    "HUD_CLIENT_TIMEOUT": "600",
}

#: Attribute name -> environment variable, for keyword overrides such as ``Settings(api_key=...)``.
FIELDS: dict[str, str] = {
    "api_key": "HUD_API_KEY",
    "api_url": "HUD_API_URL",
    "web_url": "HUD_WEB_URL",
    "gateway_url": "HUD_GATEWAY_URL",
    "runtime_url": "HUD_RUNTIME_URL",
    "rl_url": "HUD_RL_URL",
    "telemetry_url": "HUD_TELEMETRY_URL",
    "telemetry_enabled": "HUD_TELEMETRY_ENABLED",
    "cli_analytics_enabled": "HUD_CLI_ANALYTICS_ENABLED",
    "telemetry_local_dir": "HUD_TELEMETRY_LOCAL_DIR",
    "file_tracking_enabled": "HUD_FILE_TRACKING_ENABLED",
    "file_tracking_interval": "HUD_FILE_TRACKING_INTERVAL",
    "client_timeout": "HUD_CLIENT_TIMEOUT",
    "install_id": "HUD_INSTALL_ID",
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
    "gemini_api_key": "GEMINI_API_KEY",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_region": "AWS_REGION",
}

USER_ENV_HEADER = (
    "# hud user settings, written by `hud set` (one KEY=VALUE per line).\n"
    "# Lowest precedence: the process environment and ./.env override these values.\n"
)

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_VALUE_RE = re.compile(r"[A-Za-z0-9_@%+=:,./~^-]+")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


# -- .env files ------------------------------------------------------------------------
def parse_dotenv(text: str) -> dict[str, str]:
    """Parse ``.env`` text with python-dotenv (no ``${VAR}`` interpolation).

    ``KEY=VALUE`` lines, ``export`` prefix, ``#`` comments; single-quoted values decode
    ``\\\\`` and ``\\'``, double-quoted values also the usual escapes (``\\n``, ``\\t``,
    ``\\"``, ...); quoted values may span lines. Unquoted values end at `` #``. Lines that are
    not assignments (and bare keys without ``=``) are ignored; a later assignment wins.
    """
    import io

    from dotenv.parser import parse_stream

    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is not None and binding.value is not None:
            values[binding.key] = binding.value
    return values


def read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    """Parse a ``.env`` file; a missing or unreadable file gives ``{}``."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}
    return parse_dotenv(text)


def format_dotenv_value(value: str) -> str:
    """A value as written to ``.env``: bare when safe, else single-quoted (no interpolation)."""
    if _SAFE_VALUE_RE.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def user_env_path() -> Path:
    """``~/.hud/.env`` (``HOME``-relative, so tests can redirect it)."""
    return Path.home() / ".hud" / ".env"


def write_user_settings(pairs: Mapping[str, str]) -> Path:
    """Merge ``pairs`` into ``~/.hud/.env`` (header, sorted keys, mode 0600); returns its path.

    Raises ``ValueError`` for a key that is not a valid variable name.
    """
    import tempfile

    for key in pairs:
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"invalid setting name {key!r}: use letters, digits and '_'")
    path = user_env_path()
    merged = read_dotenv(path)
    merged.update({k: str(v) for k, v in pairs.items()})
    body = "".join(f"{k}={format_dotenv_value(merged[k])}\n" for k in sorted(merged))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".env.", dir=path.parent)  # created with mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(USER_ENV_HEADER + body)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    reload()
    return path


# -- typed access ----------------------------------------------------------------------
def _to_bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _to_float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


class Settings:
    """A snapshot of the ``.env`` files plus live process-environment lookups.

    Keyword overrides use attribute names (``api_key=``) or variable names (``HUD_API_KEY=``);
    ``None`` values are ignored.
    """

    def __init__(
        self,
        overrides: Mapping[str, Any] | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        home: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self._overrides: dict[str, str] = {}
        for key, value in {**(overrides or {}), **kwargs}.items():
            if value is not None:
                self._overrides[FIELDS.get(key, key)] = str(value)
        self.cwd = Path(cwd) if cwd is not None else _cwd()
        home_dir = Path(home) if home is not None else Path.home()
        self.user_env_file = home_dir / ".hud" / ".env"
        self.local_env_file = self.cwd / ".env"
        self._user = read_dotenv(self.user_env_file)
        self._local = read_dotenv(self.local_env_file)

    def __repr__(self) -> str:
        return f"Settings(cwd={str(self.cwd)!r}, user_env_file={str(self.user_env_file)!r})"

    def source(self, name: str) -> str | None:
        """Where ``name`` comes from: ``kwargs``, ``env``, a file path, or None if unset."""
        if name in self._overrides:
            return "kwargs"
        if name in os.environ:
            return "env"
        if name in self._local:
            return str(self.local_env_file)
        if name in self._user:
            return str(self.user_env_file)
        return None

    def get(self, name: str, default: str | None = None) -> str | None:
        """The configured value of ``name``, else ``default``, else its documented default."""
        for layer in (self._overrides, os.environ, self._local, self._user):
            if name in layer:
                return layer[name]
        return default if default is not None else DEFAULTS.get(name)

    def _str(self, name: str) -> str | None:
        return self.get(name) or None

    def _url(self, name: str) -> str:
        return (self.get(name) or DEFAULTS[name]).rstrip("/")

    def _bool(self, name: str) -> bool:
        value = self.get(name)
        return _to_bool(name, value) if value else _to_bool(name, DEFAULTS[name])

    def _float(self, name: str) -> float:
        value = self.get(name)
        return _to_float(name, value if value else DEFAULTS[name])

    # HUD platform
    @property
    def api_key(self) -> str | None:
        return self._str("HUD_API_KEY")

    @property
    def api_url(self) -> str:
        return self._url("HUD_API_URL")

    @property
    def web_url(self) -> str:
        return self._url("HUD_WEB_URL")

    @property
    def gateway_url(self) -> str:
        return self._url("HUD_GATEWAY_URL")

    @property
    def runtime_url(self) -> str:
        return self._url("HUD_RUNTIME_URL")

    @property
    def rl_url(self) -> str:
        return self._url("HUD_RL_URL")

    @property
    def telemetry_url(self) -> str:
        return self._url("HUD_TELEMETRY_URL")

    @property
    def telemetry_enabled(self) -> bool:
        return self._bool("HUD_TELEMETRY_ENABLED")

    @property
    def cli_analytics_enabled(self) -> bool:
        return self._bool("HUD_CLI_ANALYTICS_ENABLED")

    @property
    def telemetry_local_dir(self) -> Path | None:
        value = self._str("HUD_TELEMETRY_LOCAL_DIR")
        return Path(value).expanduser() if value else None

    @property
    def file_tracking_enabled(self) -> bool:
        return self._bool("HUD_FILE_TRACKING_ENABLED")

    @property
    def file_tracking_interval(self) -> float:
        return self._float("HUD_FILE_TRACKING_INTERVAL")

    @property
    def client_timeout(self) -> float:
        return self._float("HUD_CLIENT_TIMEOUT")

    @property
    def install_id(self) -> str | None:
        return self._str("HUD_INSTALL_ID")

    # Providers
    @property
    def anthropic_api_key(self) -> str | None:
        return self._str("ANTHROPIC_API_KEY")

    @property
    def openai_api_key(self) -> str | None:
        return self._str("OPENAI_API_KEY")

    @property
    def gemini_api_key(self) -> str | None:
        return self._str("GEMINI_API_KEY")

    @property
    def aws_access_key_id(self) -> str | None:
        return self._str("AWS_ACCESS_KEY_ID")

    @property
    def aws_secret_access_key(self) -> str | None:
        return self._str("AWS_SECRET_ACCESS_KEY")

    @property
    def aws_region(self) -> str | None:
        return self._str("AWS_REGION")


_cache: dict[tuple[Path, Path], Settings] = {}


def _cwd() -> Path:
    try:
        return Path.cwd()
    except OSError:  # the working directory was removed
        return Path(".")


def settings() -> Settings:
    """The shared `Settings` for the current directory and home (cached; see `reload`)."""
    key = (_cwd(), Path.home())
    cached = _cache.get(key)
    if cached is None:
        cached = _cache[key] = Settings(cwd=key[0], home=key[1])
    return cached


def reload() -> Settings:
    """Forget cached ``.env`` contents and read them again."""
    _cache.clear()
    return settings()


def get_setting(name: str, default: str | None = None) -> str | None:
    """``name`` from the process env, ``./.env`` or ``~/.hud/.env``; else ``default``/built-in."""
    return settings().get(name, default)
