"""`target:` and `deploy:` of an environment in conveyor.yaml -> model.deploy_repo (a
`target: kubernetes` environment is delivered by commits to a deploy repository). Problems
are recorded on the Context with file, line and field, like every other key."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from conveyor.model.deploy_repo import TARGETS, DeployRepo, TargetKind, default_path
from conveyor.spec.context import Context
from conveyor.spec.keys import known_keys, mapping
from conveyor.spec.values import describe, one_of
from conveyor.spec.yamlpos import YamlPath

DEPLOY_KEYS = ("repo", "branch", "path")
# What git accepts as a remote: scheme://..., or scp-like user@host:path.
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+|[^\s/:@]+@[^\s/:]+:\S+")


def target(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> TargetKind:
    if raw.get("target") is None:
        return "docker"
    chosen = ctx.convert((*path, "target"), lambda v: one_of(v, TARGETS), raw["target"], "docker")
    return "kubernetes" if chosen == "kubernetes" else "docker"


def deploy_repo(
    ctx: Context,
    path: YamlPath,
    raw: Mapping[str, Any],
    kind: TargetKind,
    branch_name: Callable[[Any], str],
    default_branch: str,
) -> DeployRepo | None:
    """The environment's `deploy:` (None for a Docker one). `branch_name` checks a branch
    name as conveyor.yaml's own `branch` is checked; `default_branch`: flux.branch."""
    env = str(path[-1])
    written = raw.get("deploy")
    where = (*path, "deploy")
    if kind != "kubernetes":
        if written is not None:
            ctx.error(where, "applies only to an environment with 'target: kubernetes'")
        return None
    if written is None:
        ctx.error(
            (*path, "target"),
            "target: kubernetes needs 'deploy: {repo: URL}' (the deploy repository Flux "
            "watches, where each release is committed)",
        )
        return None
    settings = mapping(ctx, where, written)
    if settings is None:
        return None
    known_keys(ctx, where, settings, DEPLOY_KEYS, listed=True)
    if settings.get("repo") is None:
        ctx.error(where, "'repo' is required: the deploy repository's URL or absolute path")
        return None
    repo = ctx.convert((*where, "repo"), _repo, settings["repo"], None)
    branch = default_branch
    if settings.get("branch") is not None:
        branch = ctx.convert((*where, "branch"), branch_name, settings["branch"], default_branch)
    directory = default_path(env)
    if settings.get("path") is not None:
        directory = ctx.convert((*where, "path"), _repo_path, settings["path"], directory)
    return DeployRepo(repo=repo, branch=branch, path=directory) if repo else None


def _repo(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a git URL or an absolute path, got {describe(value)}")
    text = value.strip()
    if _URL.fullmatch(text):
        return text
    if os.path.isabs(text):
        return os.path.normpath(text)
    raise ValueError(
        f"must be a git URL (ssh://, https://, file://, user@host:path) or an absolute path "
        f"on the server, got {describe(value)}"
    )


def _repo_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a directory of the deploy repository, got {describe(value)}")
    text = value.strip()
    normal = os.path.normpath(text)
    if text.startswith("/") or normal == ".." or normal.startswith("../"):
        raise ValueError(f"must be a path inside the deploy repository, got {describe(value)}")
    return normal


def check_deploy_repos(ctx: Context, repos: Mapping[str, DeployRepo]) -> None:
    """Two environments must not be delivered to the same directory: each overlay reads its
    own `base/`, which holds the compose file at that environment's commit."""
    seen: dict[tuple[str, str, str], str] = {}
    for env, repo in sorted(repos.items()):
        key = (repo.repo, repo.branch, repo.path)
        other = seen.get(key)
        if other is not None:
            ctx.error(
                ("environments", env, "deploy", "path"),
                f"environment '{other}' is delivered to the same repository, branch and path "
                f"'{repo.path}': give each environment its own path",
            )
        seen[key] = env
