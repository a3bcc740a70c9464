"""`compose.yaml` -> model.Stack.

The pipeline: read -> YAML with lines -> interpolation -> Compose schema (+ x-conveyor) ->
model -> semantic checks. Each of the first stages reports all it finds and stops the load,
because the next one relies on it (the model builder assumes schema-valid shapes). Model
and semantic problems are reported together, so one run lists everything left to fix.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError, SpecError
from conveyor.model.stack import Config, Secret, Service, Stack, Volume
from conveyor.spec.context import Context, collapse, raise_errors, shown
from conveyor.spec.extends import apply_extends
from conveyor.spec.include import apply_include
from conveyor.spec.merge import Located, document, merge, without_resets
from conveyor.spec.profiles import active_profiles, disabled_services
from conveyor.spec.project_networks import project_networks
from conveyor.spec.project_settings import log_settings
from conveyor.spec.semantic import check_stack
from conveyor.spec.service import build_service, pairs
from conveyor.spec.sources import env_file_variables, load_source
from conveyor.spec.support import check_support, one_host_warnings
from conveyor.spec.values import to_bool, to_str
from conveyor.spec.yamlpos import Document, SpecWarning, YamlPath, dotted, load_yaml

_PROJECT_CHARS = re.compile(r"[^a-z0-9_-]")


@dataclass(frozen=True)
class Loaded:
    """A project loaded from its files, with what Conveyor accepts but does not do."""

    stack: Stack
    warnings: tuple[SpecWarning, ...] = ()
    # The merged files' lines, so a later reader of the stack (the Kubernetes rendering) can
    # point a warning at the key it is about.
    doc: Document | None = None
    file: str = ""
    # Warnings that hold only when the project runs on one host (placement: a fleet does
    # it); app.project adds them when conveyor.yaml names no app host.
    one_host: tuple[SpecWarning, ...] = ()

    def warning(self, path: YamlPath, message: str) -> SpecWarning:
        """A warning about `path` of the compose file(s), at the line it was written on."""
        if self.doc is None or not path:
            return SpecWarning(self.file, None, dotted(path), message)
        file, line = self.doc.where(path)
        return SpecWarning(file or self.file, line, dotted(path), message)


def load_stack(
    path: Path,
    project_name: str | None = None,
    environ: Mapping[str, str] | None = None,
    profiles: Sequence[str] = (),
) -> Stack:
    """Load one compose file (see `load_compose`)."""
    return load_compose([path], project_name, environ, profiles).stack


def load_compose(
    paths: Sequence[Path],
    project_name: str | None = None,
    environ: Mapping[str, str] | None = None,
    profiles: Sequence[str] = (),
    cwd: Path | None = None,
) -> Loaded:
    """Load, interpolate, validate, merge and convert a project's compose files.

    The files are merged in order as Compose merges `-f` files; relative paths in all of
    them start at the first file's directory (the project directory), whose `.env` gives
    variables. `environ` (default: the process environment) wins over `.env`.
    `profiles` (else COMPOSE_PROFILES) enable the services that have profiles.

    Raises SpecError (one problem) or SpecErrors (several, sorted by line); messages name
    each file as it was given, so pass the paths a user typed (relative ones start at
    `cwd`, by default the process's working directory).
    """
    if not paths:
        raise SpecError("compose", None, "", "no compose file given")
    here = Path.cwd() if cwd is None else cwd
    file = str(paths[0])
    absolute = Path(os.path.normpath(here / paths[0]))
    process_env = os.environ if environ is None else environ
    dotenv = env_file_variables(absolute.parent / ".env", shown(file, ".env"), process_env)
    env = {**dotenv, **process_env}
    files = [(Path(os.path.normpath(here / p)), str(p)) for p in paths]
    merged = _files(files, absolute.parent, env, process_env, ())
    doc = document(merged, file)
    active = active_profiles(profiles, env)
    services = doc.data.get("services") if isinstance(doc.data, dict) else None
    disabled = disabled_services(services, active) if isinstance(services, dict) else {}
    if disabled and isinstance(services, dict):
        enabled = {n: raw for n, raw in services.items() if n not in disabled}
        doc = dataclasses.replace(doc, data={**doc.data, "services": enabled})
    ctx = Context(doc=doc, file=file, base=absolute.parent, environ=env, disabled=disabled)
    stack = _stack(ctx, project_name, absolute)
    check_stack(ctx, stack)
    check_support(ctx)
    raise_errors(ctx.errors)
    warnings = collapse(ctx.warnings)
    ordered = tuple(sorted(warnings, key=_by_line))
    one_host = tuple(sorted(collapse(one_host_warnings(ctx)), key=_by_line))
    return Loaded(stack, ordered, doc, file, one_host)


def _by_line(w: SpecWarning) -> tuple[str, int, str]:
    return (w.file, w.line or 0, w.field)


def _files(
    files: list[tuple[Path, str]],
    directory: Path,
    env: Mapping[str, str],
    process_env: Mapping[str, str],
    chain: tuple[tuple[Path, str], ...],
) -> Located:
    """A project's files, each with its includes and extends applied, merged in order."""

    def included(
        more: list[tuple[Path, str]],
        where: Path,
        variables: Mapping[str, str],
        seen: tuple[tuple[Path, str], ...],
    ) -> Located:
        return _files(more, where, variables, process_env, seen)

    merged: Located | None = None
    for path, file in files:
        source = load_source(path, file, env)
        source = apply_include(source, path, file, directory, process_env, chain, included)
        source = apply_extends(source, path, file, directory, env)
        merged = without_resets(source) if merged is None else merge(merged, source)
    assert merged is not None  # callers pass at least one file
    return merged


def _stack(ctx: Context, project_name: str | None, absolute: Path) -> Stack:
    data: dict[str, Any] = ctx.doc.data
    services = data.get("services") or {}
    if not services and ctx.disabled:
        profiles = sorted({p for names in ctx.disabled.values() for p in names})
        listed = ", ".join(profiles)
        ctx.error(
            ("services",),
            f"no service runs without a profile: enable one of {listed} "
            "(--profile or COMPOSE_PROFILES)",
        )
    elif not services:
        ctx.error(("services",), "no services defined")
    project = _project(ctx, project_name, data, absolute)
    built = {name: build_service(ctx, name, raw or {}) for name, raw in services.items()}
    configs = {
        name: _config(ctx, name, raw or {}) for name, raw in (data.get("configs") or {}).items()
    }
    return Stack(
        project=project,
        file=str(absolute),
        services={
            name: _with_config_files(_without_optional_disabled(ctx, service), configs)
            for name, service in built.items()
        },
        configs=configs,
        networks=project_networks(ctx, built),
        volumes={
            name: _volume(ctx, name, raw or {}) for name, raw in (data.get("volumes") or {}).items()
        },
        secrets={
            name: _secret(ctx, name, raw or {}) for name, raw in (data.get("secrets") or {}).items()
        },
        logs=log_settings(ctx, data),
    )


def _without_optional_disabled(ctx: Context, service: Service) -> Service:
    """A `required: false` dependency on a service no active profile enables is dropped, as
    Compose drops it; a required one is reported by the semantic checks."""
    kept = {
        dep: cond
        for dep, cond in service.depends_on.items()
        if dep not in ctx.disabled or cond.required
    }
    if len(kept) == len(service.depends_on):
        return service
    return service.model_copy(update={"depends_on": kept})


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
    if raw.get("name") and not external:
        ctx.warn(
            (*path, "name"),
            f"ignored: Conveyor names the project's volume <project>_{name} "
            "(only an external volume is looked up by its name)",
        )
    return Volume(
        # A custom `name:` is the engine's volume name, which external volumes need.
        name=str(raw.get("name") or name),
        external=external,
        driver=raw.get("driver"),
        driver_opts={str(k): to_str(v) for k, v in (raw.get("driver_opts") or {}).items()},
        labels=pairs(ctx, (*path, "labels"), raw.get("labels"), fill=lambda _key: ""),
    )


def _config(ctx: Context, name: str, raw: dict[str, Any]) -> Config:
    """A top-level config: exactly one of `file`, `content` or `environment` (read now, so
    the text is part of the release and a change of it rolls the replicas)."""
    path = ("configs", name)
    given = [key for key in ("file", "content", "environment") if raw.get(key) is not None]
    if raw.get("external"):
        ctx.error((*path, "external"), "external configs need Swarm (use 'file' or 'content')")
        return Config(name=name)
    if not given:
        ctx.error(path, "needs 'file', 'content' or 'environment'")
        return Config(name=name)
    if len(given) > 1:
        ctx.error(path, "set only one of " + " and ".join(f"'{key}'" for key in given))
        return Config(name=name)
    if raw.get("template_driver"):
        ctx.warn((*path, "template_driver"), "ignored: the text is used as written")
    if "file" in given:
        return Config(name=name, file=str(ctx.resolve(str(raw["file"]))))
    if "content" in given:
        return Config(name=name, content=str(raw["content"]))
    variable = str(raw["environment"])
    value = ctx.environ.get(variable)
    if value is None:
        ctx.error((*path, "environment"), f"environment variable {variable} is not set")
        return Config(name=name)
    return Config(name=name, content=value)


def _with_config_files(service: Service, configs: dict[str, Config]) -> Service:
    """Each config mount with the file or text of the config it names."""
    if not service.configs:
        return service
    mounts = tuple(
        mount.model_copy(update={"file": config.file, "content": config.content})
        if (config := configs.get(mount.source)) is not None
        else mount
        for mount in service.configs
    )
    return service.model_copy(update={"configs": mounts})


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
