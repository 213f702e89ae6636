"""Print task rows and slugs as JSON using only API shared by both `hud` packages.

Runs under either interpreter (the official one, or ours with PYTHONPATH set). Reads
``{"files": [path, ...], "rows": [[id, args], ...], "env": path, "mint": [[template, [positional],
{keyword}], ...]}`` on stdin and prints ``{"files": {path: [[slug, id, args], ...] | {"error":
text}}, "rows": [slug, ...], "minted": [[slug, args] | {"error": text}, ...]}``; ``mint`` calls
the templates of the env file ``env``.
"""

from __future__ import annotations

import importlib.util
import json
import sys

from hud import Task, Taskset


def main() -> None:
    request = json.load(sys.stdin)
    files: dict[str, object] = {}
    for path in request.get("files", []):
        try:
            taskset = Taskset.from_file(path)
            files[path] = [[t.slug, t.id, t.args] for t in taskset]
        except Exception as exc:
            files[path] = {"error": f"{type(exc).__name__}: {exc}"}
    rows = [Task(env="e", id=tid, args=args).slug for tid, args in request.get("rows", [])]
    minted: list[object] = []
    if request.get("mint"):
        spec = importlib.util.spec_from_file_location("interop_env_for_minting", request["env"])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, args, kwargs in request["mint"]:
            try:
                task = getattr(module, name)(*args, **kwargs)
                minted.append([task.slug, task.args])
            except Exception as exc:
                minted.append({"error": f"{type(exc).__name__}: {exc}"})
    print(json.dumps({"files": files, "rows": rows, "minted": minted}))


if __name__ == "__main__":
    main()
