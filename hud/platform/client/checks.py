"""Task rows checked against an environment's manifest (its templates and their argument
schemas): shared by the platform (task upload) and the CLI (`hud sync tasks`, before upload)."""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def args_problems(schema: dict[str, Any], args: dict[str, Any]) -> list[str]:
    """What is wrong with ``args`` for a template's JSON-schema ``args`` (required, unknown and
    simple types; nested schemas are left to the environment)."""
    problems: list[str] = []
    raw = schema.get("properties")
    props: dict[str, Any] = raw if isinstance(raw, dict) else {}
    missing = [k for k in schema.get("required") or [] if k not in args]
    if missing:
        problems.append(f"missing argument(s) {', '.join(missing)}")
    if schema.get("additionalProperties") is False:
        unknown = sorted(k for k in args if k not in props)
        if unknown:
            problems.append(
                f"unknown argument(s) {', '.join(unknown)} (takes {', '.join(props) or 'none'})"
            )
    for key, value in args.items():
        spec = props.get(key)
        if not isinstance(spec, dict):
            continue
        kinds = spec.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(kinds, list) and isinstance(spec.get("anyOf"), list):
            kinds = [s.get("type") for s in spec["anyOf"] if isinstance(s, dict)]
            if None in kinds:
                continue
        if not kinds:
            continue
        ok = False
        for kind in kinds:
            types = _TYPES.get(str(kind))
            if types is None:
                ok = True
                break
            if isinstance(value, types) and not (kind in ("integer", "number") and value is True):
                ok = not (kind in ("integer", "number") and isinstance(value, bool))
                if ok:
                    break
        if not ok:
            problems.append(f"argument {key} should be {' or '.join(map(str, kinds))}")
    return problems


def check_rows(
    rows: list[dict[str, Any]], manifests: dict[str, dict[str, Any] | None]
) -> list[str]:
    """One line per bad row: ``rows`` are upload items, ``manifests`` env name -> manifest
    (None: not deployed)."""
    lines: list[str] = []
    for row in rows:
        slug, env, template = row["name"], row["env"]["name"], row["task_id"]
        manifest = manifests.get(env)
        if manifest is None:
            lines.append(
                f"task {slug}: environment {env!r} has no successful build on this platform "
                "(deploy it with `hud deploy`)"
            )
            continue
        templates = {t.get("id"): t for t in manifest.get("tasks") or [] if isinstance(t, dict)}
        spec = templates.get(template)
        if spec is None:
            known = ", ".join(sorted(str(k) for k in templates)) or "none"
            lines.append(
                f"task {slug}: environment {env!r} has no template {template!r} "
                f"(templates: {known})"
            )
            continue
        raw = spec.get("args")
        schema: dict[str, Any] = raw if isinstance(raw, dict) else {}
        problems = args_problems(schema, row.get("args") or {})
        if problems:
            lines.append(f"task {slug}: {template}: {'; '.join(problems)}")
    return lines
