"""`include`: other Compose projects' resources brought into this one.

Each entry is loaded as a project of its own (its files merged, its own `.env` or the
entry's `env_file`, its relative paths read from its own project directory), then its
services, volumes, networks, secrets and configs join the including file's. A name both
define is an error, as in Compose: an included project's author did not mean it to be
changed behind their back. Problems with an `include` stop the load at once, so a missing
file does not also show up as every service that depends on what it would have defined.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from conveyor.errors import SpecError
from conveyor.spec.context import shown
from conveyor.spec.merge import Loc, Located
from conveyor.spec.sources import env_file_variables, rebase
from conveyor.spec.yamlpos import YamlPath, dotted

RESOURCES = ("services", "volumes", "networks", "secrets", "configs")
# Loads a project: (files as (path, shown), its directory, its variables, the include
# chain so far) -> the merged document, its own includes applied.
ProjectLoader = Callable[
    [list[tuple[Path, str]], Path, Mapping[str, str], tuple[tuple[Path, str], ...]], Located
]


def apply_include(
    doc: Located,
    path: Path,
    file: str,
    paths_dir: Path,
    process_env: Mapping[str, str],
    chain: tuple[tuple[Path, str], ...],
    load_project: ProjectLoader,
) -> Located:
    """`doc` (the file at `path`, shown as `file`) with its `include` entries brought in."""
    entries = doc.data.get("include") if isinstance(doc.data, dict) else None
    if not entries:
        return doc
    data = {key: value for key, value in doc.data.items() if key != "include"}
    kids = {key: kid for key, kid in doc.loc.kids.items() if key != "include"}
    include_loc = doc.loc.kid("include")
    for index, entry in enumerate(entries):
        at: YamlPath = ("include", index)
        loc = include_loc.kid(index)
        files, project_dir, env = _entry(entry, path, file, loc, at, process_env)
        seen = (*chain, (path, file))
        for included, name in files:
            if any(included == p for p, _ in seen):
                cycle = " -> ".join(n for _, n in (*seen, (included, name)))
                raise _error(loc, at, f"include loops back to a file already included: {cycle}")
        project = load_project(files, project_dir, env, seen)
        moved = rebase(project.data, project_dir, paths_dir)
        for kind in RESOURCES:
            theirs = moved.get(kind)
            if not isinstance(theirs, dict):
                continue
            ours = dict(data.get(kind) or {})
            our_locs = dict(kids[kind].kids) if kind in kids else {}
            for name, value in theirs.items():
                if name in ours:
                    where = our_locs.get(name, loc)
                    message = (
                        f"{kind.removesuffix('s')} '{name}' is also defined by "
                        f"'{files[0][1]}', included on line {loc.line}; rename one of them"
                    )
                    raise _error(where, (kind, name), message)
                ours[name] = value
                our_locs[name] = project.loc.kid(kind).kid(name)
            data[kind] = ours
            base = kids.get(kind) or Loc(loc.file, loc.line)
            kids[kind] = Loc(base.file, base.line, None, our_locs)
    return Located(data, Loc(doc.loc.file, doc.loc.line, doc.loc.tag, kids))


def _entry(
    entry: Any,
    path: Path,
    file: str,
    loc: Loc,
    at: YamlPath,
    process_env: Mapping[str, str],
) -> tuple[list[tuple[Path, str]], Path, dict[str, str]]:
    """An entry's files, project directory and variables."""
    spec: dict[str, Any] = {"path": entry} if isinstance(entry, str) else dict(entry)
    written = spec.get("path")
    listed = [written] if isinstance(written, str) else list(written or [])
    here = path.parent
    files: list[tuple[Path, str]] = []
    for index, item in enumerate(listed):
        where = (*at, "path", index) if isinstance(written, list) else (*at, "path")
        text = str(item)
        if "://" in text or text.startswith(("oci:", "git@")):
            raise _error(loc, where, f"remote include '{text}' is not supported (use a local file)")
        target = (here / text).resolve()
        if not target.is_file():
            raise _error(loc, where, f"included file '{text}' not found")
        files.append((target, shown(file, text)))
    if not files:
        raise _error(loc, at, "an include entry needs 'path'")
    directory = spec.get("project_directory")
    project_dir = (here / str(directory)).resolve() if directory else files[0][0].parent
    env_files = spec.get("env_file")
    names = [env_files] if isinstance(env_files, str) else list(env_files or [])
    variables: dict[str, str] = {}
    if names:
        for name in names:
            env_path = (here / str(name)).resolve()
            if not env_path.is_file():
                raise _error(loc, (*at, "env_file"), f"env file '{name}' not found")
            variables.update(env_file_variables(env_path, shown(file, str(name)), process_env))
    else:
        dotenv = project_dir / ".env"
        variables = env_file_variables(
            dotenv, shown(file, os.path.relpath(dotenv, here)), process_env
        )
    return files, project_dir, {**variables, **process_env}


def _error(loc: Loc, at: YamlPath, message: str) -> SpecError:
    return SpecError(loc.file, loc.line, dotted(at), message)
