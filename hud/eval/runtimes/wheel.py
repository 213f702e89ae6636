"""Build a wheel of the running ``hud`` package, offline, so images install this source tree.

``python -m hud.eval.runtimes.wheel DIR`` writes ``openhud-<version>-py3-none-any.whl`` into DIR and
prints its path; then ``docker build -f Dockerfile.hud --build-arg HUD_SPEC=./<wheel> .``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import hud
from hud.version import DIST_NAME, __version__

_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def _requirements() -> tuple[list[str], str]:
    """(Requires-Dist lines, Requires-Python) from pyproject.toml beside the package, else from
    the installed distribution's metadata."""
    pyproject = Path(hud.__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.exists():
        import tomllib

        data = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if data.get("name") == DIST_NAME:
            return list(data.get("dependencies", [])), str(data.get("requires-python", ""))
    from importlib import metadata

    try:
        dist = metadata.distribution(DIST_NAME)
    except metadata.PackageNotFoundError:
        return [], ""
    reqs = [r for r in (dist.requires or []) if "extra ==" not in r]
    return reqs, str((dist.metadata.get_all("Requires-Python") or [""])[0] or "")


def _files() -> list[tuple[str, bytes]]:
    root = Path(hud.__file__).resolve().parent
    out: list[tuple[str, bytes]] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        out.append((f"hud/{path.relative_to(root).as_posix()}", path.read_bytes()))
    return out


def wheel_bytes() -> tuple[str, bytes]:
    """(file name, bytes) of a pure-Python wheel of the running package."""
    reqs, requires_python = _requirements()
    dist_info = f"{DIST_NAME}-{__version__}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {DIST_NAME}", f"Version: {__version__}"]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    meta += [f"Requires-Dist: {r}" for r in reqs]
    files = _files()
    files.append((f"{dist_info}/METADATA", ("\n".join(meta) + "\n").encode()))
    files.append(
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: hud\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
    )
    files.append((f"{dist_info}/entry_points.txt", b"[console_scripts]\nhud = hud.cli.main:main\n"))
    record_lines = []
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record_lines.append(f"{name},sha256={digest},{len(data)}")
    record_lines.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record_lines) + "\n").encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return f"{DIST_NAME}-{__version__}-py3-none-any.whl", buf.getvalue()


def build_wheel(out_dir: str | Path) -> Path:
    """Write the wheel into ``out_dir`` (rewritten only when its bytes change); its path."""
    name, data = wheel_bytes()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = build_wheel(args[0] if args else ".")
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
