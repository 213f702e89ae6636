"""`hud login [--url URL]`: sign this machine in to a platform with the device flow (RFC 8628)
and store the new key and the platform's URLs in ``~/.hud/.env``."""

from __future__ import annotations

import typer

from hud.cli.errors import CLIError


def login_command(
    url: str = typer.Option(None, "--url", help="Platform API URL (default: HUD_API_URL)."),
    no_browser: bool = typer.Option(
        False, "--no-browser", help="Do not try to open the verification page in a browser."
    ),
) -> None:
    """Sign in to a HUD platform; stores HUD_API_KEY and the platform URLs in ~/.hud/.env."""
    import platform
    import sys

    from hud.cli.output import console
    from hud.platform.client import LoginError, device_login, start_login
    from hud.settings import get_setting, write_user_settings
    from hud.version import __version__

    api_url = (url or get_setting("HUD_API_URL") or "").rstrip("/")
    if not api_url.startswith(("http://", "https://")):
        raise CLIError(f"invalid platform URL {api_url!r}", hint="pass --url http(s)://HOST[:PORT]")
    out = console()
    try:
        grant = start_login(api_url, client_name=platform.node(), client_version=__version__)
        out.print("To sign in, open this page and approve the code:", markup=False)
        out.print(f"  {grant.verification_uri_complete}", markup=False)
        out.print(f"Code: {grant.user_code}", markup=False)
        out.print("Waiting for approval…", markup=False)
        out.file.flush()
        if not no_browser and sys.stdin.isatty() and sys.stdout.isatty():
            try:
                import webbrowser

                webbrowser.open(grant.verification_uri_complete)
            except Exception:
                pass
        result = device_login(api_url, grant)
    except LoginError as exc:
        raise CLIError(exc.message, hint="run `hud login` again") from None
    settings = {"HUD_API_URL": api_url, **result.settings, "HUD_API_KEY": result.api_key}
    path = write_user_settings(settings)
    who = " as " + result.email if result.email else ""
    team = f" (team {result.team})" if result.team else ""
    out.print(f"Signed in{who}{team}. Saved the key and platform URLs to {path}", markup=False)
