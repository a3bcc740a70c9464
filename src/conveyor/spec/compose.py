"""`compose.yaml` -> model.Stack.

The pipeline: read -> YAML with lines -> interpolation -> Compose schema (+ x-conveyor) ->
model -> semantic checks. Each of the first stages reports all it finds and stops the load,
because the next one relies on it (the model builder assumes schema-valid shapes). Model
and semantic problems are reported together, so one run lists everything left to fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError, SpecError
from conveyor.model.stack import Secret, Stack, Volume
from conveyor.spec.context import Context, raise_errors, shown
from conveyor.spec.dotenv import parse_env
from conveyor.spec.interpolate import interpolate
from conveyor.spec.schema import validate
from conveyor.spec.semantic import check_stack
from conveyor.spec.service import build_service, pairs
from conveyor.spec.values import to_bool
from conveyor.spec.yamlpos import load_yaml

_PROJECT_CHARS = re.compile(r"[^a-z0-9_-]")


def load_stack(
    path: Path, project_name: str | None = None, environ: Mapping[str, str] | None = None
) -> Stack:
    """Load, interpolate, validate and convert one compose file.

    `environ` (default: the process environment) wins over the `.env` file next to the
    compose file. Raises SpecError (one problem) or SpecErrors (several, sorted by line);
    messages name the file as `path` was given, so pass the path a user typed.
    """
    file = str(path)
    absolute = Path(os.path.abspath(path))
    text = _read(path, file)
    process_env = os.environ if environ is None else environ
    env = {**_dotenv(absolute.parent, file, process_env), **process_env}
    doc = interpolate(load_yaml(text, file, version="1.2"), env, file)
    raise_errors(validate(doc, file))
    ctx = Context(doc=doc, file=file, base=absolute.parent, environ=env)
    stack = _stack(ctx, project_name, absolute)
    check_stack(ctx, stack)
    raise_errors(ctx.errors)
    return stack


def _read(path: Path, file: str) -> str:
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


def _dotenv(base: Path, file: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Variables from `.env` beside the compose file (Compose's default env file)."""
    dotenv = base / ".env"
    if not dotenv.is_file():
        return {}
    try:
        text = dotenv.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(shown(file, ".env"), None, "", f"cannot read: {exc}") from None
    return parse_env(text, shown(file, ".env"), environ.get)


def _stack(ctx: Context, project_name: str | None, absolute: Path) -> Stack:
    data: dict[str, Any] = ctx.doc.data
    if "include" in data:
        ctx.error(("include",), "not supported by Conveyor (merge the files into one)")
    services = data.get("services") or {}
    if not services:
        ctx.error(("services",), "no services defined")
    return Stack(
        project=_project(ctx, project_name, data, absolute),
        file=str(absolute),
        services={name: build_service(ctx, name, raw or {}) for name, raw in services.items()},
        volumes={
            name: _volume(ctx, name, raw or {}) for name, raw in (data.get("volumes") or {}).items()
        },
        secrets={
            name: _secret(ctx, name, raw or {}) for name, raw in (data.get("secrets") or {}).items()
        },
    )


def normalise_project_name(name: str) -> str:
    """Compose's rule: lowercase, keep [a-z0-9_-], and start with a letter or digit."""
    return _PROJECT_CHARS.sub("", name.lower()).lstrip("_-")


COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def project_name_of(directory: Path) -> str:
    """The project a directory holds, as Compose would name it: the `name:` of its compose file
    when there is one, else the directory's name. Never fails: a compose file that does not
    parse names nothing (CI runs before anyone fixes it)."""
    for file in COMPOSE_FILES:
        try:
            text = (directory / file).read_text(encoding="utf-8")
            data = load_yaml(text, file, version="1.2").data
        except (OSError, UnicodeDecodeError, ConveyorError):
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            name = normalise_project_name(data["name"])
            if name:
                return name
        break
    return normalise_project_name(directory.resolve().name) or "default"


def _project(ctx: Context, project_name: str | None, data: dict[str, Any], absolute: Path) -> str:
    if project_name is not None:
        source, path = project_name, None
    elif data.get("name"):
        source, path = str(data["name"]), ("name",)
    else:
        source, path = absolute.parent.name, None
    name = normalise_project_name(source)
    if name:
        return name
    message = f"project name '{source}' has no letters or digits to keep"
    if path is None:
        ctx.errors.append(SpecError(ctx.file, None, "", message))
    else:
        ctx.error(path, message)
    return "default"


def _volume(ctx: Context, name: str, raw: dict[str, Any]) -> Volume:
    path = ("volumes", name)
    # `external:` may be a flag or (older syntax) a mapping holding the external name.
    written = raw.get("external", False)
    external = isinstance(written, dict) or ctx.convert(
        (*path, "external"), to_bool, written, False
    )
    return Volume(
        # A custom `name:` is the engine's volume name, which external volumes need.
        name=str(raw.get("name") or name),
        external=external,
        driver=raw.get("driver"),
        labels=pairs(ctx, (*path, "labels"), raw.get("labels"), fill=lambda _key: ""),
    )


def _secret(ctx: Context, name: str, raw: dict[str, Any]) -> Secret:
    path = ("secrets", name)
    file, variable = raw.get("file"), raw.get("environment")
    if raw.get("external"):
        ctx.error(
            (*path, "external"), "external secrets are not supported (use 'file' or 'environment')"
        )
    elif file and variable:
        ctx.error(path, "set 'file' or 'environment', not both")
    elif not file and not variable:
        ctx.error(path, "needs 'file' or 'environment'")
    return Secret(
        name=name,
        file=str(ctx.resolve(file)) if file else None,
        environment=variable or None,
    )
