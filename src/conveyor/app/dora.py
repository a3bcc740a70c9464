"""`conveyor dora`: DORA's four metrics for one environment, from its state database.

An environment is a project on this host (its own database under the state home); until the
GitOps server maps environment names to projects, `--env NAME` names that project, like `-p`.
Each release's commit time comes from git (`git cat-file commit`, the committer's time) in the
checkout of the compose file; when the release has no commit, or git does not know it (a
review environment deployed from another checkout), the release's creation time stands in and
the output says so (`commit_times`, and `commit_time_source` per deployment).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from conveyor.app.project import Project
from conveyor.app.views import JSON_VERSION
from conveyor.errors import GitError, StoreError
from conveyor.host import git
from conveyor.model.dora import DAY, CommitTimeSource, DoraMetrics, RolloutRecord, dora
from conveyor.spec.durations import parse_duration
from conveyor.store.database import DB_NAME
from conveyor.store.db import Store

DEFAULT_SINCE = "30d"
_DAYS = re.compile(r"(\d+(?:\.\d+)?)\s*([dw])")


class DoraView(BaseModel):
    version: int = JSON_VERSION
    project: str  # the project whose records were read
    environment: str  # its environment's name
    since: str  # the window as given (`30d`)
    metrics: DoraMetrics


def parse_window(text: str) -> float:
    """`30d`, `2w`, `12h`, `90m`, `1h30m` or seconds -> seconds. ValueError otherwise."""
    found = _DAYS.fullmatch(text.strip())
    seconds = (
        float(found.group(1)) * DAY * (7 if found.group(2) == "w" else 1)
        if found
        else parse_duration(text)
    )
    if seconds <= 0:
        raise ValueError(f"the window must be longer than 0, got {text!r}")
    return seconds


def dora_report(
    project: Project,
    env: str | None = None,
    since: str = DEFAULT_SINCE,
    now: float | None = None,
) -> DoraView:
    """The metrics of `env` (a project under the same state home; default: this project) over
    the `since` window before `now`."""
    window = parse_window(since)
    now = time.time() if now is None else now
    own = project.paths().state_dir
    state_dir = own if env is None else own.parent / env
    if not (state_dir / DB_NAME).exists():
        if env is not None:
            known = sorted(p.parent.name for p in own.parent.glob(f"*/{DB_NAME}"))
            raise StoreError(
                f"no environment {env!r}: {state_dir} holds no state database "
                f"(environments here: {', '.join(known) or 'none'})"
            )
        # Nothing was ever deployed here: an empty history, without creating a database.
        return empty_dora(state_dir.name, state_dir.name, since, now)
    store = Store.open(state_dir)
    try:
        records = rollout_records(store, project.compose_file.parent, now - window)
        name = store.environment.name
    finally:
        store.close()
    return DoraView(
        project=state_dir.name, environment=name, since=since, metrics=dora(records, now, window)
    )


def empty_dora(project: str, env: str, since: str, now: float | None = None) -> DoraView:
    """The metrics of an environment that never deployed anything."""
    now = time.time() if now is None else now
    return DoraView(
        project=project, environment=env, since=since, metrics=dora([], now, parse_window(since))
    )


def rollout_records(store: Store, repo: Path, since: float) -> list[RolloutRecord]:
    """The rollouts the window needs, each with its release's commit and commit time."""
    times = _CommitTimes(repo)
    out: list[RolloutRecord] = []
    for row in store.rollouts.since(since):
        release = store.releases.get(row.to_release)
        commit = release.commit if release else None
        commit_time: float | None = None
        source: CommitTimeSource | None = None
        if commit:
            commit_time = times.of(commit)
            source = "git" if commit_time is not None else None
        if commit_time is None and release is not None and release.created_at:
            commit_time, source = release.created_at, "release"
        out.append(
            RolloutRecord(
                id=row.id,
                kind=row.kind,
                status=row.status,
                started_at=row.started_at,
                finished_at=row.finished_at,
                from_release=row.from_release,
                to_release=row.to_release,
                recovers=row.recovers,
                commit=commit,
                commit_time=commit_time,
                commit_time_source=source,
            )
        )
    return out


class _CommitTimes:
    """Commit times from the checkout, each asked of git once."""

    def __init__(self, repo: Path) -> None:
        self._repo = repo
        self._seen: dict[str, float | None] = {}
        self._git = True  # until git cannot run at all: then every answer is "unknown"

    def of(self, sha: str) -> float | None:
        if sha not in self._seen:
            self._seen[sha] = self._ask(sha)
        return self._seen[sha]

    def _ask(self, sha: str) -> float | None:
        if not self._git:
            return None
        try:
            c = git.commit(self._repo, sha)
        except GitError:
            self._git = False
            return None
        if c is None or not c.committed_at:
            return None
        stamp = datetime.strptime(c.committed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return stamp.timestamp()
