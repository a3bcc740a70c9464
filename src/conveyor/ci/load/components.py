"""CI/CD components (`include: component: HOST/GROUP/PROJECT/NAME@VERSION`) from local catalogs.

No GitLab instance is reachable, so the projects that hold components come from catalogs given
on the command line (`--component-catalog`): a directory holding component projects at their
paths (`DIR/group/project`, or `DIR/HOST/group/project` to tell instances apart), or one
project's repository named explicitly (`group/project=PATH`). Every project is a git
repository, its releases are its semantic-version tags. As on GitLab:

- the last path segment is the component's name, the segments before it the project's path;
- `@1.2.3` (a release), a tag, a branch or a commit SHA name a commit; `@~latest` is the
  highest release, `@1` and `@1.2` the highest release with that major (and minor) version;
  pre-releases (`1.0.0-rc1`) are only used when named exactly;
- the file is `templates/NAME.yml`, else `templates/NAME/template.yml`, at that commit;
- the pipeline's own project (`CI_PROJECT_PATH`) is found without a catalog, at its committed
  content: a component project tests its components with `@$CI_COMMIT_SHA`.

Errors start the way GitLab's do (`Component 'ADDRESS' - ...`) and say what to change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError, GitError
from conveyor.host import git

LATEST = "~latest"
_SHORTHAND = re.compile(r"\d+(\.\d+)?")
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


class ComponentError(ValueError):
    """A component address that no catalog resolves; the message says why."""


@dataclass(frozen=True)
class Catalog:
    """Where components are looked up: `root` holds projects at their paths, or, with
    `project`, is that one project's git repository."""

    root: Path
    project: str | None = None

    def describe(self) -> str:
        return f"{self.project}={self.root}" if self.project else str(self.root)

    def candidates(self, host: str, project: str) -> list[Path]:
        if self.project is not None:
            # GitLab paths are case-insensitive.
            return [self.root] if self.project.lower() == project.lower() else []
        return [self.root / host / project, self.root / project]


def parse_catalog(text: str) -> Catalog:
    """`[GROUP/PROJECT=]PATH` as given to `--component-catalog`."""
    name, sep, path = text.rpartition("=")
    if sep and not name.strip("/"):
        raise ConveyorError(f"--component-catalog {text!r}: expected [GROUP/PROJECT=]PATH")
    where = Path(path).expanduser()
    if not where.is_dir():
        raise ConveyorError(f"--component-catalog {text!r}: {where} is not a directory")
    return Catalog(where.resolve(), name.strip("/") if sep else None)


@dataclass(frozen=True)
class Component:
    """A component address resolved to a file at one commit of a local repository."""

    address: str
    host: str
    project: str  # group/project
    name: str
    reference: str  # what follows '@'
    repo: Path
    commit: str
    version: str | None  # the release it names, None for a branch, another tag or a commit
    path: str  # templates/NAME.yml or templates/NAME/template.yml

    @property
    def display(self) -> str:
        return f"{self.project}@{self.reference}"


def resolve_component(
    address: str, catalogs: Sequence[Catalog], own: Catalog | None = None
) -> Component:
    """The component `address` names. `own` is the pipeline's own project (its path and
    checkout), where a component project tests its components
    (`$CI_SERVER_FQDN/$CI_PROJECT_PATH/NAME@$CI_COMMIT_SHA`); it comes before the catalogs.
    Raises ComponentError (message in GitLab's form)."""
    prefix = f"Component '{address}' -"
    full, at, reference = address.partition("@")
    host, _, path = full.partition("/")
    project, _, name = path.rpartition("/")
    if not at or not reference or not host or not project or not name:
        raise ComponentError(
            f"{prefix} the component path is not supported "
            "(write HOST/GROUP/PROJECT/NAME@VERSION, e.g. $CI_SERVER_FQDN/my-group/my-project"
            "/build@1.0.0)"
        )
    if own is not None and own.candidates(host, project) and _commit(own.root, "HEAD"):
        repo = own.root
    else:
        repo = _find_project(prefix, host, project, catalogs)
    releases = _releases(repo)
    commit, version = _version(prefix, project, reference, releases, repo)
    for candidate in (f"templates/{name}.yml", f"templates/{name}/template.yml"):
        if git.is_file_at(repo, commit, candidate):
            return Component(
                address, host, project, name, reference, repo, commit, version, candidate
            )
    raise ComponentError(
        f"{prefix} content not found (neither templates/{name}.yml nor "
        f"templates/{name}/template.yml exists in {project} at {reference})"
    )


def _find_project(prefix: str, host: str, project: str, catalogs: Sequence[Catalog]) -> Path:
    for catalog in catalogs:
        for candidate in catalog.candidates(host, project):
            if candidate.is_dir():
                if not _is_repository(candidate) or _commit(candidate, "HEAD") is None:
                    raise ComponentError(
                        f"{prefix} {candidate} is not a git repository with a commit "
                        "(a component project's versions are its git tags)"
                    )
                return candidate
    given = ", ".join(c.describe() for c in catalogs) or "none"
    raise ComponentError(
        f"{prefix} project does not exist or you don't have sufficient permissions: "
        f"no component catalog holds project '{project}' (catalogs: {given}; add one with "
        "--component-catalog DIR or GROUP/PROJECT=PATH)"
    )


def _releases(repo: Path) -> dict[str, tuple[tuple[int, int, int], str]]:
    """Release tags (semantic versions, no pre-release) -> (version, commit)."""
    out = {}
    for tag, commit in git.refs(repo).tags.items():
        found = _SEMVER.fullmatch(tag)
        if found and not found.group(4):
            out[tag] = ((int(found[1]), int(found[2]), int(found[3])), commit)
    return out


def _version(
    prefix: str,
    project: str,
    reference: str,
    releases: dict[str, tuple[tuple[int, int, int], str]],
    repo: Path,
) -> tuple[str, str | None]:
    """(commit, release name) for what follows '@'."""
    if reference == LATEST or _SHORTHAND.fullmatch(reference):
        if not releases:
            kind = "~latest version" if reference == LATEST else "partial semantic version"
            raise ComponentError(
                f"{prefix} The {kind} reference is not supported for non-catalog resources. "
                f"Use a tag, branch, or commit SHA instead. ({project} has no release: tag a "
                "commit with a semantic version such as 1.0.0)"
            )
        wanted = [] if reference == LATEST else [int(p) for p in reference.split(".")]
        matching = [
            (number, tag)
            for tag, (number, _) in releases.items()
            if list(number[: len(wanted)]) == wanted
        ]
        if not matching:
            raise ComponentError(
                f"{prefix} content not found: no release of {project} matches {reference} "
                f"(releases: {_listed(releases)})"
            )
        tag = max(matching)[1]
        return releases[tag][1], tag
    commit = _commit(repo, reference)
    if commit is None:
        raise ComponentError(
            f"{prefix} content not found: {project} has no release, tag, branch or commit "
            f"'{reference}' (releases: {_listed(releases)})"
        )
    return commit, reference if reference in releases else None


def _listed(releases: dict[str, tuple[tuple[int, int, int], str]]) -> str:
    return ", ".join(tag for tag, _ in sorted(releases.items(), key=lambda r: r[1][0])) or "none"


def _is_repository(path: Path) -> bool:
    """A repository's own top directory (work tree or bare), not a directory inside another
    repository, whose HEAD git would happily resolve to the outer one's."""
    bare = (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()
    return (path / ".git").exists() or bare


def _commit(repo: Path, rev: str) -> str | None:
    try:
        return git.resolve(repo, rev)
    except GitError:
        return None
