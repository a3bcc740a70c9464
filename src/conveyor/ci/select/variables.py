"""CI/CD variables as GitLab defines them: expansion, precedence, and the predefined set.

- `expand` replaces `$VAR` and `${VAR}` the way a job finally sees a value (unknown names become
  empty, `$$` is a literal `$`); `expand_existing` leaves unknown names as written, which is
  what GitLab does for `rules:changes` and `rules:exists` paths.
- `expand_all` resolves variables that reference each other, in dependency order, honouring
  `expand: false` (raw) variables.
- `merge_precedence` merges variable layers in GitLab's documented precedence, encoded once in
  `PRECEDENCE`.
- `predefined` derives GitLab's predefined pipeline variables from the git repository in the
  project directory; `job_variables` adds the per-job ones.

Git is read with `git` subprocesses (argument lists, never a shell). A directory that is not a
git repository still gets every variable, with placeholders, and `GitFacts.notes` says why.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from conveyor.errors import ConveyorError
from conveyor.model.pipeline import EnvironmentSpec, JobRun, Variable

__all__ = [
    "NULL_SHA",
    "PIPELINE_SOURCES",
    "PRECEDENCE",
    "GitFacts",
    "Layer",
    "VariablesError",
    "environment_slug",
    "environment_tier",
    "environment_variables",
    "expand",
    "expand_all",
    "expand_existing",
    "inspect_git",
    "job_variables",
    "merge_precedence",
    "predefined",
    "predefined_with_notes",
    "references",
    "slugify",
    "split_yaml",
]

NULL_SHA = "0" * 40  # GitLab's CI_COMMIT_BEFORE_SHA for a first push, MRs, schedules, web runs


class VariablesError(ConveyorError):
    """The predefined variables cannot be derived as asked (e.g. a tag ref that is not HEAD)."""


# --- expansion -------------------------------------------------------------------------------

# GitLab's runner-side syntax: `$$` escapes, names start with a letter or underscore.
_REFERENCE = re.compile(r"\$\$|\$([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# GitLab's server-side `expand_existing` pattern (no `$$` escape, digits may lead).
_EXISTING = re.compile(r"\$([A-Za-z0-9_]+)|\$\{([A-Za-z0-9_]+)\}")


def expand(value: str, variables: Mapping[str, str]) -> str:
    """Replace `$VAR`/`${VAR}` with their values (unknown: empty); `$$` becomes `$`."""

    def replace(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        return "$" if name is None else variables.get(name, "")

    return _REFERENCE.sub(replace, value)


def expand_existing(value: str, variables: Mapping[str, str]) -> str:
    """Replace only the references whose variable exists; leave the rest as written."""

    def replace(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        return variables.get(name, found.group())

    return _EXISTING.sub(replace, value)


def references(value: str) -> set[str]:
    """Names a value refers to (`$$` is an escape, not a reference)."""
    return {m.group(1) or m.group(2) for m in _REFERENCE.finditer(value) if m.group() != "$$"}


def expand_all(variables: Mapping[str, str], raw: Collection[str] = ()) -> dict[str, str]:
    """Resolve variables that reference each other, like GitLab before a job starts.

    Each value is expanded after the variables it references. `raw` names (`expand: false`)
    keep their text, `$` included, and are inserted as-is where referenced. A variable on a
    reference cycle keeps its unexpanded value (GitLab reports the cycle and leaves values
    unexpanded); variables that merely reference a cyclic one get its unexpanded text."""
    pending = {
        name: references(value) & variables.keys()
        for name, value in variables.items()
        if name not in raw
    }
    done: dict[str, str] = {name: variables[name] for name in variables if name in raw}
    while pending:
        ready = [name for name, needs in pending.items() if needs <= done.keys()]
        if not ready:
            ready = _on_cycle(pending)
            done.update({name: variables[name] for name in ready})
        else:
            done.update({name: expand(variables[name], done) for name in ready})
        for name in ready:
            del pending[name]
    return {name: done[name] for name in variables}


def _on_cycle(pending: Mapping[str, set[str]]) -> list[str]:
    """Names among `pending` that can reach themselves through other pending names."""
    cyclic = []
    for start in pending:
        seen: set[str] = set()
        stack = [n for n in pending[start] if n in pending]
        while stack:
            name = stack.pop()
            if name == start:
                cyclic.append(start)
                break
            if name not in seen:
                seen.add(name)
                stack.extend(n for n in pending[name] if n in pending)
    return cyclic


def split_yaml(variables: Mapping[str, Variable]) -> tuple[dict[str, str], set[str]]:
    """A `.gitlab-ci.yml` variables block as plain values plus the names with `expand: false`."""
    values = {name: var.value for name, var in variables.items()}
    return values, {name for name, var in variables.items() if not var.expand}


def slugify(text: str) -> str:
    """GitLab's slug (CI_COMMIT_REF_SLUG, CI_JOB_NAME_SLUG, CI_PROJECT_PATH_SLUG): lowercase,
    every character outside a-z and 0-9 replaced by `-`, cut to 63 characters, and only then
    stripped of leading and trailing `-` (so a slug can be shorter than 63)."""
    replaced = re.sub(r"[^a-z0-9]", "-", text.lower())[:63]
    return replaced.strip("-")


# --- precedence ------------------------------------------------------------------------------


class Layer(StrEnum):
    """Where a variable comes from, listed from lowest to highest precedence.

    GitLab documents (https://docs.gitlab.com/ee/ci/variables/#cicd-variable-precedence), from
    highest: pipeline execution policy variables; scan execution policy variables; pipeline
    variables (trigger, schedule, manual run, API, and Conveyor's CLI `--var`, which all share
    one rank); project; group; instance; dotenv report variables; job variables in the YAML;
    top-level YAML variables; deployment variables; predefined variables.

    Inside the YAML ranks GitLab's pipeline code adds: `workflow:rules:variables` override
    top-level variables (they are merged into them), `parallel:matrix` values override the job's
    own variables of the same name (they are merged into the job), and the matched rule's
    `rules:variables` override both (Seed::Build merges them last)."""

    PREDEFINED = "predefined"
    DEPLOYMENT = "deployment"
    YAML_GLOBAL = "yaml_global"
    WORKFLOW_RULES = "workflow_rules"
    YAML_JOB = "yaml_job"
    MATRIX = "matrix"
    RULES = "rules"
    DOTENV = "dotenv"
    INSTANCE = "instance"
    GROUP = "group"
    PROJECT = "project"
    PIPELINE = "pipeline"
    SCAN_POLICY = "scan_policy"
    PIPELINE_POLICY = "pipeline_policy"


PRECEDENCE: tuple[Layer, ...] = tuple(Layer)  # lowest first: later layers win


def merge_precedence(layers: Mapping[Layer, Mapping[str, str]]) -> dict[str, str]:
    """Merge layers so a variable from a higher-precedence layer wins. Missing layers are fine."""
    merged: dict[str, str] = {}
    for layer in PRECEDENCE:
        merged.update(layers.get(layer, {}))
    return merged


# --- git facts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitFacts:
    """What the repository in a project directory says about HEAD."""

    is_repo: bool
    sha: str = NULL_SHA
    branch: str | None = None  # None: detached HEAD or not a repository
    branches: dict[str, str] = field(default_factory=dict)  # local branch -> commit
    tags: dict[str, str] = field(default_factory=dict)  # tag -> commit (annotated: peeled)
    tag_messages: dict[str, str] = field(default_factory=dict)  # annotated tags only
    origin_head: str | None = None  # the branch refs/remotes/origin/HEAD points at
    origin_url: str | None = None
    message: str = ""
    author: str = ""
    timestamp: str = ""
    user_name: str | None = None
    user_email: str | None = None
    notes: tuple[str, ...] = ()

    def at_head(self, refs: Mapping[str, str]) -> list[str]:
        return sorted(name for name, sha in refs.items() if sha == self.sha)


def _git(project_dir: Path, *args: str) -> str | None:
    """stdout of one git command, or None when it fails (or git is missing)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(project_dir), *args],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def inspect_git(project_dir: Path) -> GitFacts:
    """Read HEAD, refs, the origin remote and the HEAD commit from `project_dir`."""
    if _git(project_dir, "rev-parse", "--is-inside-work-tree") is None:
        return GitFacts(
            is_repo=False,
            notes=(f"{project_dir} is not a git repository: commit variables are placeholders",),
        )
    notes: list[str] = []
    sha = (_git(project_dir, "rev-parse", "--verify", "-q", "HEAD^{commit}") or "").strip()
    if not sha:
        notes.append("the repository has no commit yet: CI_COMMIT_SHA is a placeholder")
    branch = (_git(project_dir, "symbolic-ref", "-q", "--short", "HEAD") or "").strip() or None
    branches, tags, messages = _refs(project_dir)
    origin = (_git(project_dir, "symbolic-ref", "-q", "refs/remotes/origin/HEAD") or "").strip()
    author, timestamp, message = _commit(project_dir) if sha else ("", "", "")
    return GitFacts(
        is_repo=True,
        sha=sha or NULL_SHA,
        branch=branch,
        branches=branches,
        tags=tags,
        tag_messages=messages,
        origin_head=origin.removeprefix("refs/remotes/origin/") or None,
        origin_url=_config(project_dir, "remote.origin.url"),
        user_name=_config(project_dir, "user.name"),
        user_email=_config(project_dir, "user.email"),
        message=message,
        author=author,
        timestamp=timestamp,
        notes=tuple(notes),
    )


def _config(project_dir: Path, key: str) -> str | None:
    return (_git(project_dir, "config", "--get", key) or "").strip() or None


def _refs(project_dir: Path) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    # Unit (0x1f) and record (0x1e) separators: empty fields and messages cannot fake them.
    fmt = "%(refname)%1f%(objectname)%1f%(*objectname)%1f%(objecttype)%1f%(contents)%1e"
    out = _git(project_dir, "for-each-ref", f"--format={fmt}", "refs/heads", "refs/tags") or ""
    branches: dict[str, str] = {}
    tags: dict[str, str] = {}
    messages: dict[str, str] = {}
    for record in out.split("\x1e"):
        parts = record.lstrip("\n").split("\x1f")
        if len(parts) < 5:
            continue
        ref, obj, peeled, kind, contents = parts[:5]
        if ref.startswith("refs/heads/"):
            branches[ref.removeprefix("refs/heads/")] = obj
        elif ref.startswith("refs/tags/"):
            name = ref.removeprefix("refs/tags/")
            tags[name] = peeled or obj
            if kind == "tag":
                messages[name] = contents
    return branches, tags, messages


def _commit(project_dir: Path) -> tuple[str, str, str]:
    """Author, committer time and the exact message, from the raw commit object."""
    raw = _git(project_dir, "cat-file", "commit", "HEAD") or ""
    headers, _, message = raw.partition("\n\n")
    author, timestamp = "", ""
    for line in headers.splitlines():
        if line.startswith("author "):
            author = _person(line.removeprefix("author "))[0]
        elif line.startswith("committer "):
            timestamp = _person(line.removeprefix("committer "))[1]
    return author, timestamp, message


def _person(text: str) -> tuple[str, str]:
    """'Name <mail> 1700000000 +0100' -> ('Name <mail>', '2023-11-14T22:13:20Z')."""
    who, _, when = text.rpartition(">")
    seconds = when.split()[0] if when.split() else "0"
    stamp = datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return who + ">", stamp


# --- predefined variables --------------------------------------------------------------------

PIPELINE_SOURCES: frozenset[str] = frozenset(
    {
        "api",
        "chat",
        "container_registry_push",
        "external",
        "external_pull_request_event",
        "merge_request_event",
        "ondemand_dast_scan",
        "ondemand_dast_validation",
        "parent_pipeline",
        "pipeline",
        "push",
        "schedule",
        "security_orchestration_policy",
        "trigger",
        "web",
        "webide",
    }
)


@dataclass(frozen=True)
class _Project:
    server_url: str
    host: str
    path: str  # group/sub/project

    @property
    def url(self) -> str:
        return f"{self.server_url}/{self.path}"


def _project(facts: GitFacts, project_dir: Path) -> _Project:
    """The GitLab project the origin remote names; `local/<dirname>` without one."""
    parsed = _parse_remote(facts.origin_url) if facts.origin_url else None
    if parsed is not None:
        return parsed
    return _Project("http://localhost", "localhost", f"local/{project_dir.resolve().name}")


def _parse_remote(url: str) -> _Project | None:
    scp = re.fullmatch(r"(?:[^@/]+@)?([^:/]+):(?!//)(.+)", url)
    if scp and "://" not in url:
        host, path = scp.group(1), scp.group(2)
        server = f"https://{host}"
    else:
        parts = urlsplit(url)
        if not parts.hostname:
            return None
        host, path = parts.hostname, parts.path
        scheme = parts.scheme if parts.scheme in ("http", "https") else "https"
        port = f":{parts.port}" if parts.port and scheme == parts.scheme else ""
        server = f"{scheme}://{host}{port}"  # credentials in the URL are dropped on purpose
    path = path.strip("/").removesuffix(".git")
    if "/" not in path:
        return None
    return _Project(server, host, path)


def _resolve_ref(facts: GitFacts, ref: str | None, default_branch: str) -> tuple[str, bool, str]:
    """(ref name, is a tag, note) for the pipeline."""
    if ref is None and not facts.is_repo:
        return default_branch, False, f"not a git repository: ref name {default_branch}"
    if ref is None:
        if facts.branch:
            return facts.branch, False, ""
        at_head = facts.at_head(facts.branches)
        if at_head:
            pick = default_branch if default_branch in at_head else at_head[0]
            return pick, False, f"detached HEAD: using branch {pick}, which points at HEAD"
        name = facts.sha[:8]
        return name, False, f"detached HEAD on no branch: ref name {name}; pass a ref to choose"
    if ref.startswith("refs/tags/"):
        return _tag_ref(facts, ref.removeprefix("refs/tags/")), True, ""
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/"), False, ""
    if ref in facts.branches or ref not in facts.tags:
        note = "" if ref in facts.branches or not facts.is_repo else f"no local branch {ref}"
        return ref, False, note
    return _tag_ref(facts, ref), True, ""


def _tag_ref(facts: GitFacts, tag: str) -> str:
    if facts.tags.get(tag) != facts.sha:
        where = facts.tags.get(tag)
        found = f"points at {where[:8]}" if where else "does not exist"
        raise VariablesError(
            f"tag {tag} {found}, but HEAD is {facts.sha[:8]}: check out the tag to run its pipeline"
        )
    return tag


def _default_branch(facts: GitFacts, given: str | None) -> str:
    if given:
        return given
    if facts.origin_head:
        return facts.origin_head
    for name in ("main", "master"):
        if name in facts.branches:
            return name
    return facts.branch or "main"


def _protected(ref: str, patterns: Iterable[str]) -> bool:
    """GitLab's protected-ref wildcards: `*` matches any run of characters, `/` included."""
    return any(
        re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), ref)
        for pattern in patterns
    )


def predefined(
    project_dir: Path,
    *,
    pipeline_id: int,
    pipeline_source: str = "push",
    pipeline_iid: int | None = None,
    ref: str | None = None,
    default_branch: str | None = None,
    protected_refs: Collection[str] | None = None,
    before_sha: str | None = None,
    registry: str | None = None,
    registry_user: str | None = None,
    registry_password: str | None = None,
    job_token: str | None = None,
    created_at: datetime | None = None,
    facts: GitFacts | None = None,
) -> dict[str, str]:
    """GitLab's predefined pipeline variables for the repository in `project_dir`.

    `ref` picks the pipeline's ref: None for HEAD's branch, a branch or tag name, or
    `refs/heads/...` / `refs/tags/...`. A tag pipeline needs the tag to point at HEAD.
    `protected_refs` holds GitLab wildcard patterns (`release/*`); by default only the default
    branch is protected, as in a new GitLab project. `registry` (host[:port]) enables the
    CI_REGISTRY* variables. `predefined_with_notes` also says which fallbacks were taken."""
    return predefined_with_notes(
        project_dir,
        pipeline_id=pipeline_id,
        pipeline_source=pipeline_source,
        pipeline_iid=pipeline_iid,
        ref=ref,
        default_branch=default_branch,
        protected_refs=protected_refs,
        before_sha=before_sha,
        registry=registry,
        registry_user=registry_user,
        registry_password=registry_password,
        job_token=job_token,
        created_at=created_at,
        facts=facts,
    )[0]


def predefined_with_notes(
    project_dir: Path,
    *,
    pipeline_id: int,
    pipeline_source: str = "push",
    pipeline_iid: int | None = None,
    ref: str | None = None,
    default_branch: str | None = None,
    protected_refs: Collection[str] | None = None,
    before_sha: str | None = None,
    registry: str | None = None,
    registry_user: str | None = None,
    registry_password: str | None = None,
    job_token: str | None = None,
    created_at: datetime | None = None,
    facts: GitFacts | None = None,
) -> tuple[dict[str, str], list[str]]:
    """`predefined`, plus notes on every fallback taken (not a repository, detached HEAD...)."""
    if pipeline_source not in PIPELINE_SOURCES:
        known = ", ".join(sorted(PIPELINE_SOURCES))
        raise VariablesError(f"unknown pipeline source {pipeline_source!r} (one of: {known})")
    facts = facts or inspect_git(project_dir)
    default = _default_branch(facts, default_branch)
    ref_name, is_tag, note = _resolve_ref(facts, ref, default)
    notes = [*facts.notes, *([note] if note else [])]
    project = _project(facts, project_dir)
    token = job_token or f"conveyor-local-job-token-{pipeline_id}"
    created = (created_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER": "yes",
        "CI_SERVER_URL": project.server_url,
        "CI_SERVER_HOST": project.host,
        "CI_SERVER_PROTOCOL": project.server_url.split(":", 1)[0],
        "CI_API_V4_URL": f"{project.server_url}/api/v4",
        "CI_CONFIG_PATH": ".gitlab-ci.yml",
        "CI_PIPELINE_ID": str(pipeline_id),
        "CI_PIPELINE_IID": str(pipeline_iid if pipeline_iid is not None else pipeline_id),
        "CI_PIPELINE_SOURCE": pipeline_source,
        "CI_PIPELINE_CREATED_AT": created,
        "CI_PIPELINE_URL": f"{project.url}/-/pipelines/{pipeline_id}",
        "CI_JOB_TOKEN": token,
        "CI_DEFAULT_BRANCH": default,
        **_commit_variables(facts, ref_name, before_sha),
        **_ref_variables(facts, ref_name, is_tag, pipeline_source, default),
        "CI_COMMIT_REF_PROTECTED": _bool(
            _protected(ref_name, protected_refs if protected_refs is not None else (default,))
        ),
        **_project_variables(project, project_dir),
        **_user_variables(facts),
    }
    if pipeline_source in ("trigger", "pipeline", "parent_pipeline"):
        out["CI_PIPELINE_TRIGGERED"] = "true"
    if registry:
        out |= {
            "CI_REGISTRY": registry,
            "CI_REGISTRY_IMAGE": f"{registry}/{project.path}".lower(),
            "CI_REGISTRY_USER": registry_user or "gitlab-ci-token",
            "CI_REGISTRY_PASSWORD": registry_password or token,
        }
    return out, notes


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _commit_variables(facts: GitFacts, ref_name: str, before_sha: str | None) -> dict[str, str]:
    title = facts.message.split("\n", 1)[0].rstrip("\r")
    return {
        "CI_COMMIT_SHA": facts.sha,
        "CI_COMMIT_SHORT_SHA": facts.sha[:8],
        "CI_COMMIT_BEFORE_SHA": before_sha or NULL_SHA,
        "CI_COMMIT_REF_NAME": ref_name,
        "CI_COMMIT_REF_SLUG": slugify(ref_name),
        "CI_COMMIT_TITLE": title,
        "CI_COMMIT_MESSAGE": facts.message,
        "CI_COMMIT_DESCRIPTION": _description(facts.message, title),
        "CI_COMMIT_AUTHOR": facts.author,
        "CI_COMMIT_TIMESTAMP": facts.timestamp,
    }


def _description(message: str, title: str) -> str:
    """GitLab: the message without its first line, or all of it when the title is 100+ long."""
    if len(title) >= 100:
        return message
    rest = message.split("\n", 1)[1] if "\n" in message else ""
    return rest.removesuffix("\n")


def _ref_variables(
    facts: GitFacts, ref_name: str, is_tag: bool, source: str, default: str
) -> dict[str, str]:
    if is_tag:
        out = {"CI_COMMIT_TAG": ref_name}
        if ref_name in facts.tag_messages:
            out["CI_COMMIT_TAG_MESSAGE"] = facts.tag_messages[ref_name].rstrip("\n")
        return out
    if source == "merge_request_event":
        # GitLab has no CI_COMMIT_BRANCH in merge request pipelines; Conveyor fakes an MR from
        # the branch to the default branch (callers add other CI_MERGE_REQUEST_* they need).
        return {
            "CI_MERGE_REQUEST_IID": "1",
            "CI_MERGE_REQUEST_EVENT_TYPE": "detached",
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": ref_name,
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": default,
        }
    return {"CI_COMMIT_BRANCH": ref_name}


def _project_variables(project: _Project, project_dir: Path) -> dict[str, str]:
    namespace, _, name = project.path.rpartition("/")
    return {
        "CI_PROJECT_DIR": str(project_dir.resolve()),
        "CI_PROJECT_NAME": name,
        "CI_PROJECT_TITLE": name,
        "CI_PROJECT_PATH": project.path,
        "CI_PROJECT_PATH_SLUG": slugify(project.path),
        "CI_PROJECT_NAMESPACE": namespace,
        "CI_PROJECT_ROOT_NAMESPACE": namespace.split("/", 1)[0],
        "CI_PROJECT_URL": project.url,
    }


def _user_variables(facts: GitFacts) -> dict[str, str]:
    out = {}
    if facts.user_name:
        out["GITLAB_USER_NAME"] = facts.user_name
    if facts.user_email:
        out["GITLAB_USER_EMAIL"] = facts.user_email
        out["GITLAB_USER_LOGIN"] = facts.user_email.split("@", 1)[0]
    return out


def job_variables(
    job: JobRun, job_id: int, *, project_url: str, started_at: datetime | None = None
) -> dict[str, str]:
    """The predefined variables of one job (GitLab's CI_JOB_* and CI_NODE_*)."""
    out = {
        "CI_JOB_NAME": job.name,
        "CI_JOB_NAME_SLUG": slugify(job.name),
        "CI_JOB_STAGE": job.stage,
        "CI_JOB_ID": str(job_id),
        "CI_JOB_URL": f"{project_url}/-/jobs/{job_id}",
        "CI_NODE_TOTAL": str(job.node_total or 1),  # GitLab: 1 when the job is not parallel
    }
    if job.node_index is not None:
        out["CI_NODE_INDEX"] = str(job.node_index)
    if job.when == "manual":
        out["CI_JOB_MANUAL"] = "true"
    if started_at is not None:
        out["CI_JOB_STARTED_AT"] = started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


# --- environments ------------------------------------------------------------------------


def environment_slug(name: str) -> str:
    """GitLab's CI_ENVIRONMENT_SLUG (Gitlab::Slug::Environment): lowercase letters, digits and
    `-`, starting with a letter, at most 24 characters; a name that had to change (or is too
    long) is cut to 17 characters and gets a 6-character suffix derived from its SHA-256."""
    slug = re.sub(r"[^a-z0-9]", "-", name.lower())
    if not re.match(r"[a-z]", slug):
        slug = "env-" + slug
    slug = re.sub(r"-+", "-", slug)
    if len(slug) > 24 or slug != name:
        slug = slug[:17]
        if not slug.endswith("-"):
            slug += "-"
        return slug + _base36(int(hashlib.sha256(name.encode()).hexdigest(), 16))[-6:]
    return slug.removesuffix("-")


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


_TIER_GUESSES: tuple[tuple[str, str], ...] = (
    (r"(dev|review|trunk)", "development"),
    (r"(test|tst|int|ac(ce|)pt|qa|qc|control|quality)", "testing"),
    (r"(st(a|)g|mod(e|)l|pre|demo|non)", "staging"),
    (r"(pr(o|)d|live)", "production"),
)


def environment_tier(name: str, given: str | None = None) -> str:
    """`environment:deployment_tier`, else GitLab's guess from the name (Environment#guess_tier)."""
    if given:
        return given
    for pattern, tier in _TIER_GUESSES:
        if re.search(pattern, name, re.IGNORECASE):
            return tier
    return "other"


def environment_variables(
    environment: EnvironmentSpec, variables: Mapping[str, str]
) -> dict[str, str]:
    """The CI_ENVIRONMENT_* variables of a job with `environment:`; its name and url are
    expanded with the job's (already expanded) `variables`."""
    name = expand(environment.name, variables)
    out = {
        "CI_ENVIRONMENT_NAME": name,
        "CI_ENVIRONMENT_SLUG": environment_slug(name),
        "CI_ENVIRONMENT_ACTION": environment.action,
        "CI_ENVIRONMENT_TIER": environment_tier(name, environment.deployment_tier),
    }
    if environment.url:
        out["CI_ENVIRONMENT_URL"] = expand(environment.url, variables)
    return out
