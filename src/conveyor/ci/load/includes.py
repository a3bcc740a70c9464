"""`include:` as GitLab expands it, from files on this machine only.

- `local:` paths are relative to the root of the project that holds the including file (a
  leading `/` means the same); `*` and `**` wildcards match files with GitLab's own rule
  (`*` stays inside one directory, `**` crosses directories).
- `project:` + `file:` (+ `ref:`, default the repository's HEAD) read the file from a local
  git repository named in `LoadContext.projects`; its own `local:` includes then come from
  that repository at the same commit, as they would on GitLab.
- `component:` reads `templates/NAME.yml` (or `templates/NAME/template.yml`) of a component
  project found in `LoadContext.catalogs` (or the pipeline's own project), at the version
  asked (`components`); its `local:` includes come from that project at that commit.
- `artifact:` + `job:` (only in `trigger: include:`) read a job's artifact through
  `LoadContext.artifact`.
- `remote:` and `template:` need gitlab.com or the network: an error says so.
- Locations (`local`, `project`, `ref`, `file`, `component`) expand the variables GitLab knows
  when it reads the configuration (`LoadContext.variables`); unknown ones become empty.
- `rules:` decide with `if`, `exists` and `changes`, the clauses of job rules, evaluated with
  those variables, the including project's files and the pushed changes: the first rule whose
  clauses hold decides, `when: never` leaves the file out, and no matching rule too.
- Every file is read as GitLab reads it (`header`): a `spec:inputs` header takes the include's
  `inputs:` (checked by `inputs`), and its `$[[ ... ]]` blocks are replaced
  (`interpolation`) before its own includes are expanded.

Merging follows GitLab's processor: the included files are deep-merged in order (later files
override earlier ones), then the including file's own content is merged on top; mappings
merge key by key, lists and scalars are replaced. A file included again with the same inputs
is merged once; with other inputs, once per set of inputs (a component used twice).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from conveyor.ci.load.build import rule as rule_spec
from conveyor.ci.load.components import Catalog, Component, ComponentError, resolve_component
from conveyor.ci.load.context import LoadContext
from conveyor.ci.load.header import CiDocument, read_document
from conveyor.ci.load.inputs import InputProblem, resolve_inputs
from conveyor.ci.load.interpolation import InterpolationError, Interpolator
from conveyor.ci.load.located import LMap, deep_merge, locate
from conveyor.ci.load.schema import validate_part
from conveyor.ci.select.facts import FileFacts
from conveyor.ci.select.globs import wildcard_regex
from conveyor.ci.select.rules import rule_holds
from conveyor.ci.select.variables import expand, expand_all, expand_existing
from conveyor.errors import ExprError, GitError, SelectionError, SpecError, SpecErrors
from conveyor.host import git
from conveyor.spec.yamlpos import YamlPath, dotted

MAX_INCLUDES = 150  # GitLab's default `ci_max_includes`, nested includes counted
OFFLINE = {
    "remote": "remote includes are not reachable offline; vendor the file and use local:",
    "template": "GitLab templates are not reachable offline; vendor the file and use local:",
}


_Fail = Callable[[YamlPath, str], SpecError]  # where, what -> the error to raise


@dataclass(frozen=True)
class Source:
    """Where a file's `local:` includes are read: the pipeline's working tree (commit None)
    or a local git repository standing in for a GitLab project, at one commit."""

    root: Path
    display: str  # prefix of file names in errors ("" for the pipeline's own project)
    project: str | None = None
    commit: str | None = None

    def show(self, path: str) -> str:
        return f"{self.display}/{path}" if self.display else path


@dataclass(frozen=True)
class _File:
    source: Source
    path: str  # relative to the source root, '/'-separated
    inputs: Any = None  # the include's `inputs:` mapping
    component: Component | None = None
    job: str | None = None  # `artifact:` includes: the job whose artifact this is

    @property
    def key(self) -> tuple[str | None, str | None, str, str | None]:
        return (self.source.project, self.source.commit, self.path, self.job)

    @property
    def display(self) -> str:
        if self.job is not None:
            return f"{self.job}:{self.path}"
        return self.source.show(self.path)


@dataclass(frozen=True)
class Expanded:
    content: LMap
    included: tuple[str, ...]  # display names of the merged files, in order


def project_source(root_file: str, root_dir: Path) -> Source:
    """The pipeline's own project, named in errors the way its file was given."""
    return Source(root_dir, os.path.dirname(root_file))


def expand_includes(
    root: LMap, root_file: str, root_dir: Path, context: LoadContext | None = None
) -> Expanded:
    """The root file with every include merged in. Raises SpecError(s) on the first bad one."""
    source = project_source(root_file, root_dir)
    expander = _Expander(context or LoadContext(), root_dir)
    content = expander.expand(root, source, (_File(source, os.path.basename(root_file)),))
    return Expanded(content, tuple(expander.included))


def resolve_includes(
    entries: Any, where: YamlPath, holder: LMap, source: Source, context: LoadContext
) -> Expanded:
    """The files a list of include entries names (rules, inputs and nested includes applied),
    merged in order, with nothing merged on top: the configuration of a `trigger: include:`
    child pipeline. `where` is the entries' path in `holder`, for errors; `source` the project
    whose `local:` files they name (`project_source` for the pipeline's own)."""
    expander = _Expander(context, source.root)
    merged = expander.merge(entries, where, holder, source, ())
    return Expanded(merged, tuple(expander.included))


def interpolate_document(
    doc: CiDocument,
    given: Mapping[str, Any],
    context: LoadContext,
    component: Component | None = None,
) -> tuple[Any, list[InputProblem]]:
    """A file's configuration with its inputs (`given`, else defaults) put in, and the
    problems with the given inputs (GitLab's messages).
    Raises SpecError for a block GitLab would refuse. Without a header nothing is replaced
    (a `$[[ ]]` stays as written, as on GitLab)."""
    values, problems = resolve_inputs(
        None if doc.header is None else doc.header.inputs, {k: v for k, v in given.items()}
    )
    if problems or doc.header is None:
        return doc.content, problems
    fields: dict[str, Any] = {}
    if component is not None:
        known = {
            "name": component.name,
            "sha": component.commit,
            "version": component.version,
            "reference": component.reference,
        }
        fields = {name: known[name] for name in doc.header.component if name in known}
    interpolator = Interpolator(
        {"inputs": values, "component": fields}, context.variables, context.masked
    )
    try:
        return interpolator.interpolate(doc.content, doc.header.loc), []
    except InterpolationError as exc:
        raise SpecError(exc.loc.file, exc.loc.line, exc.field, exc.message) from None


class _Expander:
    def __init__(self, context: LoadContext, pipeline_root: Path) -> None:
        self.context = context
        self.pipeline_root = pipeline_root
        self.seen: set[tuple[Any, ...]] = set()
        self.included: list[str] = []

    def expand(self, content: LMap, source: Source, chain: tuple[_File, ...]) -> LMap:
        if "include" not in content:
            return content
        raw = content["include"]
        errors = validate_part("include", _for_schema(raw), ("include",), content)
        if errors:
            raise errors[0] if len(errors) == 1 else SpecErrors(errors)
        merged = self.merge(raw, ("include",), content, source, chain)
        return deep_merge(merged, content.without("include"))

    def merge(
        self, raw: Any, where: YamlPath, holder: LMap, source: Source, chain: tuple[_File, ...]
    ) -> LMap:
        def fail(at: YamlPath, message: str) -> SpecError:
            loc = locate(holder, at, holder.loc)
            return SpecError(loc.file, loc.line, dotted(at), message)

        merged = LMap(holder.loc)
        for entry, path in _entries(raw, where):
            for file in self._files(entry, path, source, fail):
                if any(file.key == parent.key for parent in chain):
                    names = " -> ".join(f.display for f in (*chain, file))
                    raise fail(path, f"include cycle: {names}")
                # GitLab ignores a file included a second time (by another branch of nested
                # includes) with the same inputs: its content is already merged.
                seen = (*file.key, _canonical(file.inputs))
                if seen in self.seen:
                    continue
                self.seen.add(seen)
                self.included.append(file.display)
                if len(self.included) > MAX_INCLUDES:
                    raise fail(path, f"more than {MAX_INCLUDES} included files (GitLab's limit)")
                loaded = self._load(file, path, fail)
                merged = deep_merge(merged, self.expand(loaded, file.source, (*chain, file)))
        return merged

    def _files(self, entry: Any, path: YamlPath, source: Source, fail: _Fail) -> list[_File]:
        if isinstance(entry, str):
            written = self._expand(entry)
            if re.match(r"https?://", written):
                raise fail(path, OFFLINE["remote"])
            return self._local(written, path, source, fail)
        if not isinstance(entry, Mapping):
            raise fail(path, "an include must be a file name or a mapping (local:, project:...)")
        for keyword, message in OFFLINE.items():
            if keyword in entry:
                raise fail((*path, keyword), message)
        rules = entry.get("rules")
        if rules is not None and not self._included_by_rules(rules, (*path, "rules"), source, fail):
            return []
        if "local" in entry:
            files = self._local(self._expand(entry["local"]), (*path, "local"), source, fail)
        elif "component" in entry:
            files = [self._component(self._expand(entry["component"]), (*path, "component"), fail)]
        elif "artifact" in entry:
            files = [self._artifact(entry, path, source, fail)]
        else:
            files = self._project(entry, path, fail)
        inputs = entry.get("inputs")
        return [replace(f, inputs=inputs) for f in files] if inputs is not None else files

    def _expand(self, written: Any) -> str:
        return expand(str(written), self.context.variables)

    def _local(self, written: str, at: YamlPath, source: Source, fail: _Fail) -> list[_File]:
        relative = written.lstrip("/")
        if "*" in relative:
            # GitLab lists the files matching the wildcard; none is not an error (nothing is
            # included), exactly as GitLab's wildcard expansion behaves.
            pattern = wildcard_regex(relative)
            return [_File(source, f) for f in _list_files(source) if pattern.fullmatch(f)]
        normal = PurePosixPath(os.path.normpath(relative)).as_posix()
        if normal.startswith("../") or normal == "..":
            raise fail(at, f"local file '{written}' is outside the project")
        if not _exists(source, normal):
            project = f" in project '{source.project}'" if source.project else ""
            raise fail(at, f"local file '{written}' does not exist{project}")
        return [_File(source, normal)]

    def _project(self, entry: Any, path: YamlPath, fail: _Fail) -> list[_File]:
        project = self._expand(entry["project"]).strip("/")
        # GitLab project paths are case-insensitive: `Group/Lib` is `group/lib`.
        name, repo = next(
            ((n, p) for n, p in self.context.projects.items() if n.lower() == project.lower()),
            (project, None),
        )
        if repo is None:
            known = ", ".join(sorted(self.context.projects)) or "none"
            raise fail(
                (*path, "project"),
                f"project '{project}' is not available offline "
                "(map it to a local git repository with --include-project NAME=PATH; "
                f"known: {known})",
            )
        ref = self._expand(entry["ref"]) if entry.get("ref") else None
        commit = git.resolve(repo, ref or "HEAD")
        if commit is None:
            at = (*path, "ref") if ref else (*path, "project")
            raise fail(at, f"ref '{ref or 'HEAD'}' does not exist in project '{project}'")
        display = f"{project}@{ref}" if ref else project
        target = Source(repo, display, name, commit)
        listed = isinstance(entry["file"], list)
        names = entry["file"] if listed else [entry["file"]]
        out = []
        for index, written in enumerate(names):
            file = self._expand(written)
            relative = PurePosixPath(os.path.normpath(file.lstrip("/"))).as_posix()
            if not _exists(target, relative):
                at = (*path, "file", index) if listed else (*path, "file")
                version = f" at '{ref}'" if ref else ""
                raise fail(at, f"file '{file}' does not exist in project '{project}'{version}")
            out.append(_File(target, relative))
        return out

    def _component(self, address: str, at: YamlPath, fail: _Fail) -> _File:
        own_path = self.context.variables.get("CI_PROJECT_PATH")
        own = Catalog(self.pipeline_root, own_path) if own_path else None
        try:
            found = resolve_component(address, self.context.catalogs, own)
        except (ComponentError, GitError) as exc:
            raise fail(at, str(exc)) from None
        source = Source(found.repo, found.display, found.project, found.commit)
        return _File(source, found.path, component=found)

    def _artifact(self, entry: Any, path: YamlPath, source: Source, fail: _Fail) -> _File:
        if self.context.artifact is None:
            raise fail(
                (*path, "artifact"),
                "include:artifact only works in trigger:include (a child pipeline "
                "configuration generated by a job)",
            )
        job = entry.get("job")
        if not job:
            raise fail(path, "include:artifact needs job: the job that made the artifact")
        return _File(source, self._expand(entry["artifact"]), job=str(job))

    def _load(self, file: _File, path: YamlPath, fail: _Fail) -> LMap:
        try:
            if file.job is not None:
                assert self.context.artifact is not None  # _artifact checked it
                text = self.context.artifact(file.job, file.path)
            else:
                text = _read(file.source, file.path)
        except (OSError, UnicodeDecodeError, GitError, ValueError) as exc:
            raise fail(path, f"cannot read {file.display}: {exc}") from None
        doc = read_document(text, file.display)
        if doc.content is None:
            raise fail(path, f"{file.display} is empty")
        if not isinstance(doc.content, LMap):
            raise SpecError(file.display, 1, "", "an included file must be a YAML mapping")
        given = file.inputs if isinstance(file.inputs, Mapping) else {}
        content, problems = interpolate_document(doc, given, self.context, file.component)
        if problems:
            at = (*path, "inputs")
            raise _errors(
                [
                    fail((*at, p.given) if p.given else at, f"`{file.display}`: {p.message}")
                    for p in problems
                ]
            )
        assert isinstance(content, LMap)  # interpolating a mapping gives a mapping
        return content

    def _included_by_rules(self, rules: Any, path: YamlPath, source: Source, fail: _Fail) -> bool:
        """GitLab's include rules: the first rule whose clauses all hold decides; `when: never`
        excludes, anything else includes; when no rule matches the file is not included."""
        for index, written in enumerate(rules if isinstance(rules, list) else []):
            at: YamlPath = (*path, index)
            if not isinstance(written, dict):
                raise fail(at, "an include rule must be a mapping")
            for clause, keys in (("exists", ("project", "regexp")), ("changes", ("regexp",))):
                value = written.get(clause)
                for key in keys:
                    if isinstance(value, dict) and key in value:
                        raise fail((*at, clause, key), "is not supported in include rules yet")
            rule = rule_spec(written)
            facts = FileFacts(
                files=tuple(_list_files(source)) if rule.exists is not None else None,
                changed=self.context.changed,
                diffs=self._diffs(rule.changes_compare_to),
            )
            try:
                holds = rule_holds(rule, self.context.variables, facts)
            except ExprError as exc:
                raise fail((*at, "if"), f"invalid expression: {exc}") from None
            except SelectionError as exc:
                raise fail((*at, "changes", "compare_to"), str(exc)) from None
            if holds:
                return written.get("when") != "never"
        return False

    def _diffs(self, compare_to: str | None) -> dict[str, tuple[str, ...] | None]:
        """The pipeline project's changes since `compare_to` (as rules expand it)."""
        if compare_to is None:
            return {}
        ref = expand_existing(compare_to, expand_all(self.context.variables))
        try:
            paths = git.changed_since(self.pipeline_root, ref)
        except GitError:
            paths = None
        return {ref: None if paths is None else tuple(paths)}


def _entries(raw: Any, where: YamlPath) -> Iterator[tuple[Any, YamlPath]]:
    if isinstance(raw, list):
        for index, entry in enumerate(raw):
            yield entry, (*where, index)
    else:
        yield raw, where


def _canonical(inputs: Any) -> str:
    return "" if inputs is None else json.dumps(inputs, sort_keys=True, default=str)


def _errors(errors: list[SpecError]) -> SpecError | SpecErrors:
    if len(errors) == 1:
        return errors[0]
    return SpecErrors(sorted(errors, key=lambda e: (e.file, e.line or 0)))


def _for_schema(raw: Any) -> Any:
    """The schema's pattern for a string include (`\\w\\.ya?ml$`) rejects the wildcard
    form GitLab documents (`include: 'configs/*.yml'`); validate such strings as the
    `local:` entries GitLab reads them as."""
    if isinstance(raw, str) and "*" in raw:
        return {"local": raw}
    if isinstance(raw, list):
        return [_for_schema(entry) if isinstance(entry, str) else entry for entry in raw]
    return raw


# --- reading files from the working tree or a git commit --------------------------------------


def _exists(source: Source, path: str) -> bool:
    if source.commit is None:
        return (source.root / path).is_file()
    return git.is_file_at(source.root, source.commit, path)


def _read(source: Source, path: str) -> str:
    if source.commit is None:
        return (source.root / path).read_text(encoding="utf-8")
    return git.read_file_at(source.root, source.commit, path)


def _list_files(source: Source) -> list[str]:
    """Every file of the project, '/'-separated and sorted (the order GitLab lists them): at
    a commit, its tree; in the working tree, what a checkout holds plus untracked files
    `.gitignore` does not exclude (what job `rules:exists` sees), or every file outside
    `.git` when the directory is not a git work tree."""
    if source.commit is not None:
        return git.files_at(source.root, source.commit)
    try:
        listed = git.checkout_files(source.root)
    except GitError:
        listed = None
    if listed is not None:
        return sorted(set(listed))
    out = []
    for folder, dirs, names in os.walk(source.root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            out.append(Path(folder, name).relative_to(source.root).as_posix())
    return sorted(out)


__all__ = [
    "MAX_INCLUDES",
    "Expanded",
    "Source",
    "expand_includes",
    "interpolate_document",
    "project_source",
    "resolve_includes",
]
