"""One compose file read on its own: text -> YAML 1.2 -> interpolation -> schema, located.

Every file of a project (each `-f`, an override file, an `include`d or `extends`ed one) goes
through here before the files are merged, so each file's errors name that file. Also here:
the `.env` a project directory provides, and moving relative paths from the directory a
file was written for to the project's (Compose resolves an included or extended file's
paths against its own directory).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.errors import SpecError
from conveyor.spec.context import raise_errors
from conveyor.spec.dotenv import parse_env
from conveyor.spec.interpolate import interpolate
from conveyor.spec.merge import MARKERS, Located, located, without_resets
from conveyor.spec.mounts import is_host_path
from conveyor.spec.schema import validate
from conveyor.spec.yamlpos import load_yaml


def read_text(path: Path, file: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(file, None, "", "file not found") from None
    except IsADirectoryError:
        raise SpecError(file, None, "", "is a directory, not a compose file") from None
    except UnicodeDecodeError as exc:
        raise SpecError(file, None, "", f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise SpecError(file, None, "", f"cannot read: {exc.strerror}") from None


def load_source(path: Path, file: str, env: Mapping[str, str]) -> Located:
    """One file, interpolated with `env` and schema-valid; raises its errors together.

    `path` is where it is, `file` how messages name it (as the user wrote it)."""
    doc = interpolate(
        load_yaml(read_text(path, file), file, version="1.2", markers=MARKERS), env, file
    )
    source = located(doc, file)
    # `!reset null` is how Compose's docs write a reset: the schema checks what stays.
    raise_errors(validate(dataclasses.replace(doc, data=without_resets(source).data), file))
    return source


def env_file_variables(path: Path, file: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Variables of an env file (a project directory's `.env`: Compose's default), or none
    when it does not exist. `file` names it in messages."""
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(file, None, "", f"cannot read: {exc}") from None
    return parse_env(text, file, environ.get)


# --- relative paths -----------------------------------------------------------------------


def rebase(data: dict[str, Any], source: Path, project: Path) -> dict[str, Any]:
    """A whole compose document whose relative paths were written from `source`, with them
    written from `project` instead (same structure, so its locations stay valid)."""
    if source == project:
        return data
    out = dict(data)
    services = data.get("services")
    if isinstance(services, dict):
        out["services"] = {
            name: rebase_service(raw, source, project) if isinstance(raw, dict) else raw
            for name, raw in services.items()
        }
    for kind in ("secrets", "configs"):
        resources = data.get(kind)
        if isinstance(resources, dict):
            out[kind] = {
                name: _with(raw, "file", source, project) if isinstance(raw, dict) else raw
                for name, raw in resources.items()
            }
    return out


def rebase_service(raw: dict[str, Any], source: Path, project: Path) -> dict[str, Any]:
    """One service's relative paths (build context, env files, bind mounts) moved."""
    if source == project:
        return raw
    out = dict(raw)
    build = raw.get("build")
    if isinstance(build, str):
        out["build"] = _path(build, source, project)
    elif isinstance(build, dict) and isinstance(build.get("context"), str):
        out["build"] = _with(build, "context", source, project)
    for key in ("env_file", "label_file"):
        value = raw.get(key)
        if isinstance(value, str):
            out[key] = _path(value, source, project)
        elif isinstance(value, list):
            out[key] = [
                _path(item, source, project)
                if isinstance(item, str)
                else _with(item, "path", source, project)
                if isinstance(item, dict)
                else item
                for item in value
            ]
    volumes = raw.get("volumes")
    if isinstance(volumes, list):
        out["volumes"] = [_volume(item, source, project) for item in volumes]
    return out


def _volume(item: Any, source: Path, project: Path) -> Any:
    if isinstance(item, str):
        host, sep, rest = item.partition(":")
        if sep and host.startswith("."):
            return f"{_path(host, source, project)}:{rest}"
        return item
    if isinstance(item, dict) and item.get("type") == "bind":
        return _with(item, "source", source, project)
    return item


def _with(mapping: dict[str, Any], key: str, source: Path, project: Path) -> dict[str, Any]:
    value = mapping.get(key)
    if not isinstance(value, str):
        return mapping
    return {**mapping, key: _path(value, source, project)}


def _path(written: str, source: Path, project: Path) -> str:
    """`written` (relative to `source`) relative to `project`; absolute, home-relative and
    remote (git URL) paths stay as they are."""
    if not written or os.path.isabs(written) or written.startswith("~") or "://" in written:
        return written
    if written.startswith("git@"):
        return written
    moved = os.path.relpath(os.path.normpath(source / written), project)
    # A bind mount's source must still look like a path, not a volume name.
    return moved if is_host_path(moved) else f"./{moved}"
