"""`hud deploy [DIR|env.py]`: build an environment on the HUD platform (ours or hosted) and link
the directory to it (spec platform.md §1, §3)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from hud.cli.errors import CLIError


def platform_credentials() -> tuple[str, str, str]:
    """(api url, api key, web url) from the settings; `CLIError` without a key."""
    from hud.settings import settings

    current = settings()
    if not current.api_key:
        raise CLIError(
            "HUD_API_KEY is not set",
            hint="run `hud login`, or `hud set HUD_API_KEY=<key>` with a key of your platform",
        )
    return current.api_url, current.api_key, current.web_url


def _is_tty() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _env_file(path: Path) -> dict[str, str]:
    from hud.settings import read_dotenv

    if not path.is_file():
        raise CLIError(f"--env-file {path} does not exist", hint="give the path of a .env file")
    return read_dotenv(path)


def _targets(directory: Path, every: bool) -> list[Path]:
    if not every:
        return [directory]
    from hud.platform.client.deploy import declared_names

    found = []
    for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
        if sub.name.startswith("."):
            continue
        has_recipe = any(
            (sub / f).exists()
            for f in ("Dockerfile.hud", "Dockerfile", "compose.yaml", "compose.yml")
        )
        if has_recipe and any(declared_names(p) for p in sub.glob("*.py")):
            found.append(sub)
    if not found:
        raise CLIError(
            f"--all: no environment directory under {directory}",
            hint="each needs a Dockerfile(.hud) or compose.yaml and an Environment(...)",
        )
    return found


def deploy_command(
    directory: str = typer.Argument(".", help="Environment directory or env.py file."),
    every: bool = typer.Option(
        False, "--all", "-a", help="Deploy every environment directory under DIRECTORY."
    ),
    name: str = typer.Option(None, "--name", help="Environment name when several are declared."),
    env: list[str] = typer.Option(
        [], "--env", "-e", help="Environment secret KEY=VALUE (repeatable), encrypted at rest."
    ),
    env_file: Path = typer.Option(
        None, "--env-file", help="Upsert environment secrets from this file (others are kept)."
    ),
    no_env: bool = typer.Option(
        False, "--no-env", help="Do not seed secrets from a local .env on first deploy."
    ),
    build_arg: list[str] = typer.Option([], "--build-arg", help="Docker build argument KEY=VALUE."),
    secret: list[str] = typer.Option(
        [], "--secret", help="Docker build secret: id=NAME,env=VAR or id=NAME,src=FILE."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Build without the layer cache."),
    project: str = typer.Option(None, "--project", help="Project ID for this command."),
    registry_id: str = typer.Option(None, "--registry-id", hidden=True),
    runtime: str = typer.Option(None, "--runtime", help="Default runtime provider: hud or modal."),
    runtime_config: Path = typer.Option(
        None, "--runtime-config", help="Path to a JSON RuntimeConfig (e.g. a Compose recipe)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan without deploying."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Skip confirmation prompts."),
    as_json: bool = typer.Option(False, "--json", help="Write JSON to stdout."),
) -> None:
    """Upload the directory, build its image on the platform and stream the build log."""
    from hud.platform.client.deploy import (
        DeployError,
        DeployRequest,
        deploy,
        find_env_name,
        parse_build_secrets,
        parse_pairs,
        plan,
    )
    from hud.platform.client.link import Link

    if runtime and runtime not in ("hud", "modal"):
        raise CLIError(f"--runtime {runtime!r} is not hud or modal")
    try:
        env_vars = parse_pairs(env, "--env")
        args = parse_pairs(build_arg, "--build-arg")
        build_secrets = parse_build_secrets(secret)
    except DeployError as exc:
        raise CLIError(str(exc)) from None
    if env_file is not None:
        env_vars = {**_env_file(env_file), **env_vars}
    config: dict[str, Any] | None = None
    if runtime_config is not None:
        try:
            config = json.loads(runtime_config.read_text())
        except (OSError, ValueError) as exc:
            raise CLIError(f"--runtime-config {runtime_config}: {exc}") from None
        if not isinstance(config, dict):
            raise CLIError(f"--runtime-config {runtime_config} is not a JSON object")

    base = Path(directory)
    targets = _targets(base, every) if every else [base]
    out = sys.stderr if as_json else sys.stdout
    results: list[dict[str, Any]] = []
    failed = False
    for target in targets:
        try:
            root, env_name = find_env_name(target, name if not every else None)
        except DeployError as exc:
            raise CLIError(str(exc)) from None
        request = DeployRequest(
            target=target,
            name=env_name,
            env_vars=dict(env_vars),
            build_args=args,
            build_secrets=build_secrets,
            no_cache=no_cache,
            project_id=project,
            registry_id=registry_id,
            runtime_provider=runtime,
            runtime_config=config,
        )
        dotenv = root / ".env"
        first = not Link.load(root).get("registry_id")
        if first and dotenv.is_file() and env_file is None and not no_env:
            if not _is_tty():
                raise CLIError(
                    f"{dotenv} exists: say whether to store it as environment secrets",
                    hint="pass --env-file .env to store its values (encrypted), or --no-env",
                )
            if typer.confirm(f"Store the values of {dotenv} as environment secrets?"):
                request.env_vars = {**_env_file(dotenv), **request.env_vars}
        if dry_run:
            try:
                info = plan(request)
            except DeployError as exc:
                raise CLIError(str(exc)) from None
            info.update(
                dry_run=True,
                env_var_keys=sorted(request.env_vars),
                build_arg_keys=sorted(args),
            )
            results.append(info)
            if not as_json:
                print(
                    f"Would deploy {info['name']} from {info['directory']} "
                    f"({info['bytes']} bytes of context)",
                    file=out,
                )
            continue
        if not yes and _is_tty() and not typer.confirm(f"Deploy {env_name} from {root}?"):
            raise CLIError("deploy cancelled")
        api_url, api_key, web_url = platform_credentials()

        def on_event(kind: str, text: str) -> None:
            if kind == "log":
                stamp = datetime.now().strftime("%H:%M:%S")
                print(f"[{stamp}] {text}", file=out, flush=True)
            else:
                print(text, file=out, flush=True)

        try:
            result = deploy(api_url, api_key, request, on_event=on_event)
        except DeployError as exc:
            raise CLIError(str(exc)) from None
        status = result.status
        failed = failed or not result.succeeded
        row = {
            "success": result.succeeded,
            "build_id": result.build_id,
            "registry_id": result.registry_id,
            "name": env_name,
            "status": status.get("status"),
            "version": status.get("version"),
            "uri": status.get("uri"),
            "error_message": status.get("error_message"),
            "env_var_keys": sorted(request.env_vars),
            "url": f"{web_url}/environments/{result.registry_id}",
        }
        results.append(row)
        if not as_json:
            _render(row, status)
    if as_json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    if failed:
        raise typer.Exit(1)


def _render(row: dict[str, Any], status: dict[str, Any]) -> None:
    from rich.table import Table

    from hud.cli.output import console

    manifest = status.get("manifest") or {}
    tasks = ", ".join(str(t.get("id")) for t in manifest.get("tasks") or [] if isinstance(t, dict))
    caps = ", ".join(
        str(c.get("name")) for c in manifest.get("capabilities") or [] if isinstance(c, dict)
    )
    table = Table(title="Build", show_header=False)
    table.add_row("Build ID", row["build_id"])
    table.add_row("Environment", row["name"])
    table.add_row("Status", str(row["status"]))
    table.add_row("Version", str(row["version"] or "unknown"))
    table.add_row("Image", str(row["uri"] or ""))
    if row["error_message"]:
        table.add_row("Error", str(row["error_message"]))
    if tasks:
        table.add_row("Tasks", tasks)
    if caps:
        table.add_row("Capabilities", caps)
    console().print(table)
    console().print(row["url"], markup=False)
