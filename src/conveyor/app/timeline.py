"""`conveyor timeline`: what happened to one commit — its pipelines and their jobs, the releases
built from it in every environment, and the rollouts of those releases with their verdicts —
in time order with durations.

Every project database under the state home is read: the repository's (pipelines) and each
environment's (a review environment a CI job deployed is a project of its own)."""

from __future__ import annotations

from pathlib import Path

from conveyor.app.deploy import rollout_view
from conveyor.app.project import Project
from conveyor.app.views import (
    TimelineEntry,
    TimelineJob,
    TimelinePipeline,
    TimelineRelease,
    TimelineView,
)
from conveyor.errors import GitError, UnknownRef
from conveyor.host import git
from conveyor.model.events import Event
from conveyor.model.release import Release
from conveyor.store.database import DB_NAME
from conveyor.store.db import Store


def timeline(
    project: Project,
    ref: str | None,
    release: int | None = None,
    events: bool = False,
    newest: int | None = None,
) -> TimelineView:
    """The timeline of `ref` (default HEAD). Outside a git checkout, or with `release`, the
    timeline of a release instead (default: the newest) — a deploy of plain files. `newest`:
    of a commit's pipelines only the newest that many are read (a commit run a thousand times
    would read them all; `pipelines_left_out` counts the others)."""
    paths = project.paths()
    home = paths.state_dir.parent
    stores = _stores(home, paths.state_dir)
    try:
        here = project.compose_file.parent
        found = None if release is not None else _commit(here, ref or "HEAD")
        if found is None and ref is not None and release is None:
            raise UnknownRef(
                f"{ref}: not a commit in {here} (timeline takes a git ref, or --release N)"
            )
        if found is None:
            return _for_release(stores, paths.project, release, events)
        sha, title = found
        return _for_commit(stores, sha, title, events, newest)
    finally:
        for s in stores.values():
            s.close()


def _commit(directory: Path, ref: str) -> tuple[str, str] | None:
    """(sha, title) of `ref` in the checkout at `directory`; None outside git."""
    try:
        sha = git.resolve(directory, ref)
        c = git.commit(directory, sha) if sha else None
    except GitError:
        return None
    if sha is None or c is None:
        return None
    return sha, c.message.strip().splitlines()[0] if c.message.strip() else ""


def _stores(home: Path, own: Path) -> dict[str, Store]:
    """Every project database under `home`, the command's own project first."""
    others = {p.parent for p in home.glob(f"*/{DB_NAME}")} - {own}
    dirs = [own, *sorted(others)]
    return {d.name: Store.open(d) for d in dirs if (d / DB_NAME).exists()}


def _for_commit(
    stores: dict[str, Store], sha: str, title: str, events: bool, newest: int | None = None
) -> TimelineView:
    pipelines: list[TimelinePipeline] = []
    releases: list[TimelineRelease] = []
    evs: list[Event] = []
    rows = [(name, p) for name, store in stores.items() for p in store.pipelines.for_commit(sha)]
    left_out = 0
    if newest is not None and len(rows) > newest:
        left_out = len(rows) - newest
        rows = sorted(rows, key=lambda r: r[1].started_at)[-newest:]
    for name, p in rows:
        store = stores[name]
        pipelines.append(
            TimelinePipeline(
                id=p.id,
                project=name,
                ref=p.ref,
                status=p.status,
                started_at=p.started_at,
                finished_at=p.finished_at,
                duration=p.duration,
                jobs=[
                    TimelineJob(
                        id=j.id,
                        name=j.name,
                        stage=j.stage,
                        status=j.status,
                        started_at=j.started_at,
                        finished_at=j.finished_at,
                        duration=j.duration,
                        environment=(j.environment or {}).get("name"),
                    )
                    for j in store.jobs.of(p.id)
                ],
            )
        )
    for name, store in stores.items():
        releases += _releases(name, store, store.releases.for_commit(sha))
        if events:
            evs += store.events.about(commit=sha)
    view = _view(sha, title, pipelines, releases, evs)
    view.pipelines_left_out = left_out
    return view


def _for_release(
    stores: dict[str, Store], project: str, number: int | None, events: bool
) -> TimelineView:
    store = stores.get(project)
    rel = None
    if store is not None:
        rel = (
            store.releases.get(number)
            if number is not None
            else next(iter(store.releases.latest(limit=1)), None)
        )
    if store is None or rel is None:
        what = f"release {number}" if number is not None else "no release yet"
        raise UnknownRef(f"{project}: {what} (run `conveyor up` or see `conveyor history`)")
    evs = store.events.about(release=rel.number) if events else []
    return _view(rel.commit, f"release {rel.number}", [], _releases(project, store, [rel]), evs)


def _releases(project: str, store: Store, releases: list[Release]) -> list[TimelineRelease]:
    rollouts = store.rollouts.of_releases([rel.number for rel in releases])
    env = store.environment.name
    return [
        TimelineRelease(
            project=project,
            environment=env,
            number=rel.number,
            created_at=rel.created_at,
            pipeline=rel.pipeline,
            job=rel.job,
            images={s: sr.image_ref for s, sr in rel.services.items()},
            rollouts=[rollout_view(r) for r in rollouts if r.to_release == rel.number],
        )
        for rel in releases
    ]


def _view(
    commit: str | None,
    title: str,
    pipelines: list[TimelinePipeline],
    releases: list[TimelineRelease],
    events: list[Event],
) -> TimelineView:
    entries: list[TimelineEntry] = []
    for p in pipelines:
        entries.append(
            TimelineEntry(
                at=p.started_at,
                duration=p.duration,
                what="pipeline",
                project=p.project,
                id=p.id,
                title=f"pipeline #{p.id} ({p.ref or 'no ref'})",
                status=p.status,
            )
        )
        for j in p.jobs:
            if j.started_at is None:
                continue  # never ran: skipped, manual, canceled before it began
            env = f" → {j.environment}" if j.environment else ""
            entries.append(
                TimelineEntry(
                    at=j.started_at,
                    duration=j.duration,
                    what="job",
                    project=p.project,
                    id=j.id,
                    title=f"{j.name} ({j.stage}){env}",
                    status=j.status,
                )
            )
    for rel in releases:
        via = f" by pipeline #{rel.pipeline}" if rel.pipeline else ""
        entries.append(
            TimelineEntry(
                at=rel.created_at,
                duration=None,
                what="release",
                project=rel.project,
                id=rel.number,
                title=f"release {rel.number} of {rel.environment}{via}",
                status="created",
            )
        )
        for r in rel.rollouts:
            entries.append(
                TimelineEntry(
                    at=r.started_at,
                    duration=r.duration,
                    what="rollout",
                    project=rel.project,
                    id=r.id,
                    title=f"{r.kind} {r.from_release or '-'} → {r.to_release}"
                    + (f": {r.error}" if r.error else ""),
                    status=r.status,
                )
            )
    entries.sort(key=lambda e: e.at)
    return TimelineView(
        commit=commit,
        subject=title,
        pipelines=pipelines,
        releases=releases,
        entries=entries,
        events=events,
    )
