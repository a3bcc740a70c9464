"""GitLab's predefined variables: the pipeline's (from the repository's `GitFacts`), a job's
(CI_JOB_*, CI_NODE_*) and an environment's (CI_ENVIRONMENT_*).

A directory that is not a git repository still gets every variable, with placeholders, and
`GitFacts.notes` says why.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from conveyor.ci.select.facts import NULL_SHA, GitFacts
from conveyor.ci.select.variables import expand, slugify
from conveyor.errors import VariablesError
from conveyor.model.pipeline import EnvironmentSpec, JobRun

__all__ = [
    "PIPELINE_SOURCES",
    "NewPipeline",
    "environment_slug",
    "environment_tier",
    "environment_variables",
    "job_identity",
    "job_variables",
    "predefined",
    "predefined_with_notes",
]


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
    return _Project("http://localhost", "localhost", f"local/{project_dir.name}")


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


@dataclass(frozen=True)
class NewPipeline:
    """The pipeline being created, as far as its predefined variables go.

    `ref` picks the pipeline's ref: None for HEAD's branch, a branch or tag name, or
    `refs/heads/...` / `refs/tags/...`. A tag pipeline needs the tag to point at HEAD.
    `protected_refs` holds GitLab wildcard patterns (`release/*`); by default only the default
    branch is protected, as in a new GitLab project. `registry` (host[:port]) enables the
    CI_REGISTRY* variables."""

    id: int
    source: str = "push"
    iid: int | None = None
    ref: str | None = None
    default_branch: str | None = None
    protected_refs: Collection[str] | None = None
    before_sha: str | None = None
    registry: str | None = None
    registry_user: str | None = None
    registry_password: str | None = None
    job_token: str | None = None
    created_at: datetime | None = None


def predefined(project_dir: Path, facts: GitFacts, pipeline: NewPipeline) -> dict[str, str]:
    """GitLab's predefined pipeline variables for the repository in `project_dir` (absolute,
    symlinks resolved) that `facts` describes. `predefined_with_notes` also says which
    fallbacks were taken."""
    return predefined_with_notes(project_dir, facts, pipeline)[0]


def predefined_with_notes(
    project_dir: Path, facts: GitFacts, pipeline: NewPipeline
) -> tuple[dict[str, str], list[str]]:
    """`predefined`, plus notes on every fallback taken (not a repository, detached HEAD...)."""
    pipeline_id, pipeline_source, pipeline_iid = pipeline.id, pipeline.source, pipeline.iid
    if pipeline_source not in PIPELINE_SOURCES:
        known = ", ".join(sorted(PIPELINE_SOURCES))
        raise VariablesError(f"unknown pipeline source {pipeline_source!r}: use one of {known}")
    default = _default_branch(facts, pipeline.default_branch)
    ref_name, is_tag, note = _resolve_ref(facts, pipeline.ref, default)
    notes = [*facts.notes, *([note] if note else [])]
    project = _project(facts, project_dir)
    token = pipeline.job_token or f"conveyor-local-job-token-{pipeline_id}"
    created_at = pipeline.created_at or datetime.now(UTC)
    created = created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    protected = pipeline.protected_refs if pipeline.protected_refs is not None else (default,)
    out = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER": "yes",
        "CI_SERVER_URL": project.server_url,
        "CI_SERVER_HOST": project.host,
        "CI_SERVER_FQDN": project.server_url.split("://", 1)[-1],  # host[:port]
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
        **_commit_variables(facts, ref_name, pipeline.before_sha),
        **_ref_variables(facts, ref_name, is_tag, pipeline_source, default),
        "CI_COMMIT_REF_PROTECTED": _bool(_protected(ref_name, protected)),
        **_project_variables(project, project_dir),
        **_user_variables(facts),
    }
    if pipeline_source in ("trigger", "pipeline", "parent_pipeline"):
        out["CI_PIPELINE_TRIGGERED"] = "true"
    if registry := pipeline.registry:
        out |= {
            "CI_REGISTRY": registry,
            "CI_REGISTRY_IMAGE": f"{registry}/{project.path}".lower(),
            "CI_REGISTRY_USER": pipeline.registry_user or "gitlab-ci-token",
            "CI_REGISTRY_PASSWORD": pipeline.registry_password or token,
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
        "CI_PROJECT_DIR": str(project_dir),
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


def job_identity(job: JobRun) -> dict[str, str]:
    """The predefined variables a job has as soon as its pipeline is created (before it has an
    id): name, stage, parallel index, manual."""
    out = {
        "CI_JOB_NAME": job.name,
        "CI_JOB_NAME_SLUG": slugify(job.name),
        "CI_JOB_STAGE": job.stage,
        "CI_NODE_TOTAL": str(job.node_total or 1),  # GitLab: 1 when the job is not parallel
    }
    if job.node_index is not None:
        out["CI_NODE_INDEX"] = str(job.node_index)
    if job.when == "manual":
        out["CI_JOB_MANUAL"] = "true"
    return out


def job_variables(
    job: JobRun, job_id: int, *, project_url: str, started_at: datetime | None = None
) -> dict[str, str]:
    """The predefined variables of one job (GitLab's CI_JOB_* and CI_NODE_*)."""
    out = {
        **job_identity(job),
        "CI_JOB_ID": str(job_id),
        "CI_JOB_URL": f"{project_url}/-/jobs/{job_id}",
    }
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
