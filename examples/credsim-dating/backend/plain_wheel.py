"""A minimal PEP 517 build backend: builds the wheel of a pure-Python package laid out
as src/<package>/, with its metadata and entry points from pyproject.toml.

It needs nothing but the standard library, so `pip install --no-build-isolation`
works where no build tool (setuptools with wheel, hatchling) is installed and nothing
can be downloaded. Only what this package uses is supported: name, version,
description, requires-python, dependencies and entry points.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAG = "py3-none-any"


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]


def _dist(project: dict) -> str:
    return f"{project['name'].replace('-', '_')}-{project['version']}"


def _metadata(project: dict) -> dict[str, str]:
    """The files of the .dist-info folder, by name."""
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}",
             f"Version: {project['version']}", f"Summary: {project.get('description', '')}",
             f"Requires-Python: {project.get('requires-python', '')}"]
    lines += [f"Requires-Dist: {d}" for d in project.get("dependencies", [])]
    eps = []
    for group, entries in project.get("entry-points", {}).items():
        eps += [f"[{group}]"] + [f"{k} = {v}" for k, v in entries.items()] + [""]
    return {"METADATA": "\n".join(lines) + "\n", "entry_points.txt": "\n".join(eps),
            "WHEEL": f"Wheel-Version: 1.0\nGenerator: plain_wheel\nRoot-Is-Purelib: true\n"
                     f"Tag: {TAG}\n"}


def get_requires_for_build_wheel(config_settings=None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None) -> str:
    project = _project()
    info = Path(metadata_directory) / f"{_dist(project)}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    for name, text in _metadata(project).items():
        (info / name).write_text(text, "utf-8")
    return info.name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None) -> str:
    project = _project()
    dist = _dist(project)
    wheel = Path(wheel_directory) / f"{dist}-{TAG}.whl"
    files = {str(p.relative_to(ROOT / "src")): p.read_bytes()
             for p in sorted((ROOT / "src").rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts}
    files.update({f"{dist}.dist-info/{name}": text.encode()
                  for name, text in _metadata(project).items()})
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record + [f"{dist}.dist-info/RECORD,,"])
                                         + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel.name


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
