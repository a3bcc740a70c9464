"""`include:` as GitLab expands it, from files on this machine only.

- `local:` paths are relative to the root of the project that holds the including file (a
  leading `/` means the same); `*` and `**` wildcards match files with GitLab's own rule
  (`*` stays inside one directory, `**` crosses directories).
- `project:` + `file:` (+ `ref:`, default the repository's HEAD) read the file from a local
  git repository named in the `projects` mapping; its own `local:` includes then come from
  that repository at the same commit, as they would on GitLab.
- `remote:`, `template:` and `component:` need gitlab.com or the network: an error says so.
- `rules:` are evaluated with `exists` (and `when`); `if` and `changes` need the pipeline's
  variables and pushed changes, which this stage does not have yet: an error says so.

Merging follows GitLab's processor: the included files are deep-merged in order (later files
override earlier ones), then the including file's own content is merged on top; mappings
merge key by key, lists and scalars are replaced.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from conveyor.ci.load.located import LMap, deep_merge, load_located, locate
from conveyor.ci.load.schema import validate_part
from conveyor.ci.select.globs import wildcard_regex
from conveyor.errors import GitError, SpecError, SpecErrors
from conveyor.host import git
from conveyor.spec.yamlpos import YamlPath, dotted

MAX_INCLUDES = 150  # GitLab's default `ci_max_includes`, nested includes counted
OFFLINE = {
    "remote": "remote includes are not reachable offline; vendor the file and use local:",
    "template": "GitLab templates are not reachable offline; vendor the file and use local:",
    "component": "CI/CD components are not reachable offline; vendor the file and use local:",
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

    @property
    def key(self) -> tuple[str | None, str | None, str]:
        return (self.source.project, self.source.commit, self.path)

    @property
    def display(self) -> str:
        return self.source.show(self.path)


@dataclass(frozen=True)
class Expanded:
    content: LMap
    included: tuple[str, ...]  # display names of the merged files, in order


def expand_includes(
    root: LMap, root_file: str, root_dir: Path, projects: Mapping[str, Path]
) -> Expanded:
    """The root file with every include merged in. Raises SpecError(s) on the first bad one."""
    base = os.path.dirname(root_file)
    source = Source(root_dir, base)
    name = os.path.basename(root_file)
    expander = _Expander(projects)
    content = expander.expand(root, source, (_File(source, name),))
    return Expanded(content, tuple(expander.included))


class _Expander:
    def __init__(self, projects: Mapping[str, Path]) -> None:
        self.projects = projects
        self.seen: set[tuple[str | None, str | None, str]] = set()
        self.included: list[str] = []

    def expand(self, content: LMap, source: Source, chain: tuple[_File, ...]) -> LMap:
        if "include" not in content:
            return content
        raw = content["include"]
        errors = validate_part("include", _for_schema(raw), ("include",), content)
        if errors:
            raise errors[0] if len(errors) == 1 else SpecErrors(errors)

        def fail(at: YamlPath, message: str) -> SpecError:
            loc = locate(content, at, content.key_loc("include"))
            return SpecError(loc.file, loc.line, dotted(at), message)

        merged = LMap(content.loc)
        for entry, path in _entries(raw):
            for file in self._files(entry, path, source, fail):
                if any(file.key == parent.key for parent in chain):
                    names = " -> ".join(f.display for f in (*chain, file))
                    raise fail(path, f"include cycle: {names}")
                # GitLab ignores a file included a second time (by another branch of nested
                # includes): its content is already merged.
                if file.key in self.seen:
                    continue
                self.seen.add(file.key)
                self.included.append(file.display)
                if len(self.included) > MAX_INCLUDES:
                    raise fail(path, f"more than {MAX_INCLUDES} included files (GitLab's limit)")
                loaded = self._load(file, path, fail)
                merged = deep_merge(merged, self.expand(loaded, file.source, (*chain, file)))
        return deep_merge(merged, content.without("include"))

    def _files(self, entry: Any, path: YamlPath, source: Source, fail: _Fail) -> list[_File]:
        if isinstance(entry, str):
            if re.match(r"https?://", entry):
                raise fail(path, OFFLINE["remote"])
            return self._local(entry, path, source, fail)
        for keyword, message in OFFLINE.items():
            if keyword in entry:
                raise fail((*path, keyword), message)
        if "inputs" in entry:
            raise fail((*path, "inputs"), "include inputs (spec:inputs) are not supported yet")
        rules = entry.get("rules")
        if rules is not None and not _included_by_rules(rules, (*path, "rules"), source, fail):
            return []
        if "local" in entry:
            return self._local(entry["local"], (*path, "local"), source, fail)
        return self._project(entry, path, fail)

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
        project = str(entry["project"]).strip("/")
        # GitLab project paths are case-insensitive: `Group/Lib` is `group/lib`.
        name, repo = next(
            ((n, p) for n, p in self.projects.items() if n.lower() == project.lower()),
            (project, None),
        )
        if repo is None:
            known = ", ".join(sorted(self.projects)) or "none"
            raise fail(
                (*path, "project"),
                f"project '{project}' is not available offline "
                "(map it to a local git repository with --include-project NAME=PATH; "
                f"known: {known})",
            )
        ref = entry.get("ref")
        commit = git.resolve(repo, ref or "HEAD")
        if commit is None:
            at = (*path, "ref") if ref else (*path, "project")
            raise fail(at, f"ref '{ref or 'HEAD'}' does not exist in project '{project}'")
        display = f"{project}@{ref}" if ref else project
        target = Source(repo, display, name, commit)
        listed = isinstance(entry["file"], list)
        names = entry["file"] if listed else [entry["file"]]
        out = []
        for index, name in enumerate(names):
            relative = PurePosixPath(os.path.normpath(str(name).lstrip("/"))).as_posix()
            if not _exists(target, relative):
                at = (*path, "file", index) if listed else (*path, "file")
                version = f" at '{ref}'" if ref else ""
                raise fail(at, f"file '{name}' does not exist in project '{project}'{version}")
            out.append(_File(target, relative))
        return out

    def _load(self, file: _File, path: YamlPath, fail: _Fail) -> LMap:
        try:
            text = _read(file.source, file.path)
        except (OSError, UnicodeDecodeError, GitError) as exc:
            raise fail(path, f"cannot read {file.display}: {exc}") from None
        data = load_located(text, file.display)
        if data is None:
            raise fail(path, f"{file.display} is empty")
        if not isinstance(data, LMap):
            raise SpecError(file.display, 1, "", "an included file must be a YAML mapping")
        return data


def _entries(raw: Any) -> Iterator[tuple[Any, YamlPath]]:
    if isinstance(raw, list):
        for index, entry in enumerate(raw):
            yield entry, ("include", index)
    else:
        yield raw, ("include",)


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
    """Every file of the project, '/'-separated and sorted (the order GitLab lists them)."""
    if source.commit is not None:
        return git.files_at(source.root, source.commit)
    out = []
    for folder, dirs, names in os.walk(source.root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            out.append(Path(folder, name).relative_to(source.root).as_posix())
    return sorted(out)


# --- patterns ---------------------------------------------------------------------------------


def _fnmatch_regex(pattern: str) -> re.Pattern[str]:
    """Ruby's `File.fnmatch?` with FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB, which GitLab
    uses for `rules:exists`: `**/` is zero or more directories, `*` and `?` stay within one
    directory (dot files included), `[...]` classes and `{a,b}` alternatives."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:[^/]*/)*")
            index += 3
        elif char == "*":
            out.append("[^/]*")
            index += 2 if pattern.startswith("**", index) else 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "[" and "]" in pattern[index + 2 :]:
            end = pattern.index("]", index + 2)
            body = pattern[index + 1 : end]
            negate = body[:1] in ("!", "^")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            index = end + 1
        elif char == "{" and "}" in pattern[index:]:
            end = pattern.index("}", index)
            options = pattern[index + 1 : end].split(",")
            out.append("(?:" + "|".join(_fnmatch_regex(o).pattern for o in options) + ")")
            index = end + 1
        elif char == "\\" and index + 1 < len(pattern):
            out.append(re.escape(pattern[index + 1]))
            index += 2
        else:
            out.append(re.escape(char))
            index += 1
    return re.compile("".join(out))


def _included_by_rules(rules: Any, path: YamlPath, source: Source, fail: _Fail) -> bool:
    """GitLab's include rules: the first rule whose clauses all hold decides; `when: never`
    excludes, anything else includes; when no rule matches the file is not included."""
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        at: YamlPath = (*path, index)
        if not isinstance(rule, dict):
            raise fail(at, "an include rule must be a mapping")
        if "if" in rule:
            raise fail(
                (*at, "if"),
                "include rules with 'if' need the pipeline's variables (not supported yet)",
            )
        if "changes" in rule:
            raise fail(
                (*at, "changes"),
                "include rules with 'changes' need the pushed changes (not supported yet)",
            )
        if "exists" in rule and not _exists_any(rule["exists"], (*at, "exists"), source, fail):
            continue
        return rule.get("when") != "never"
    return False


def _exists_any(exists: Any, at: YamlPath, source: Source, fail: _Fail) -> bool:
    if isinstance(exists, dict):
        for key in ("project", "regexp"):
            if key in exists:
                raise fail((*at, key), "is not supported in include rules yet")
        exists = exists.get("paths", [])
    files = _list_files(source)
    for written in exists:
        if "$" in written:
            raise fail(at, f"'{written}' needs the pipeline's variables (not supported yet)")
        pattern = _fnmatch_regex(written.lstrip("/"))
        if any(pattern.fullmatch(name) for name in files):
            return True
    return False
