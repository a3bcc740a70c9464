"""One writer per project: a `conveyor server` claims the environment projects it manages, and
a local command finds out whether the project it is about to touch is one of them.

The server side: `claim_project` writes the record (`model.ownership.ServerOwner`, kept by
`store.owner_file`) when the server first opens an environment's project, and `reclaim` gives
every record of the server's data directory the new PID and address at each start.

The command side: `resolve` finds the record for what the command names (`-p NAME` from
anywhere, the project's state directory, or a compose file in a server's work tree) and says
whether its server runs; `open_owned` opens the project as the server has it (its name and
state directory), for a command that may go on. What a command does about it is
`app.one_writer.decide`, pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.app.project import Project
from conveyor.errors import NoComposeFile, StoreError
from conveyor.host.process import pid_alive, process_started
from conveyor.model.environments import EnvironmentSpec
from conveyor.model.ownership import OWNER_FILE, ServerOwner
from conveyor.store.owner_file import index_owner, indexed, indexed_all, read_owner, write_owner

STATE_HOME = "CONVEYOR_STATE_HOME"  # where project state directories live (app.project)

# the server ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerIdentity:
    """The running server, as its records name it."""

    url: str
    pid: int
    pid_start: int | None
    data_dir: Path  # absolute
    source: str

    @classmethod
    def this_process(cls, url: str, data_dir: Path, source: str, pid: int) -> ServerIdentity:
        return cls(url, pid, process_started(pid), data_dir.resolve(), source)


def claim_project(
    server: ServerIdentity, spec: EnvironmentSpec, project: Project, environ: Mapping[str, str]
) -> ServerOwner:
    """Record that `server` manages `project` (environment `spec`): in its state directory
    and in the index. Writes only what changed, so it may be called on every use."""
    paths = project.paths()
    owner = ServerOwner(
        project=paths.project,
        environment=spec.name,
        server_url=server.url,
        pid=server.pid,
        pid_start=server.pid_start,
        data_dir=str(server.data_dir),
        source=server.source,
        branch=spec.branch,
        promote_from=spec.promote_from,
        work_tree=str((project.cwd or project.compose_file.parent).resolve()),
        compose_files=tuple(str(p) for p in project.file_paths()),
        state_dir=str(paths.state_dir.resolve()),
    )
    try:
        write_owner(owner)
        index_owner(owner, environ)
    except OSError as e:
        raise StoreError(
            f"{paths.state_dir}: cannot record that the server manages {paths.project} "
            f"({e.strerror})"
        ) from e
    return owner


def reclaim(server: ServerIdentity, environ: Mapping[str, str]) -> list[ServerOwner]:
    """At the server's start: every record written for its data directory (found under its
    environments' work trees, and through the index) now names this process. Returns them."""
    found: dict[str, ServerOwner] = {}
    for record in sorted(server.data_dir.glob(f"environments/*/*/.conveyor/*/{OWNER_FILE}")):
        try:
            owner = read_owner(record.parent)
        except StoreError:
            continue  # not ours to judge at start: a command reading it will say what is wrong
        if owner is not None:
            found[owner.state_dir] = owner
    for owner in indexed_all(environ):
        found.setdefault(owner.state_dir, owner)
    claimed = []
    for owner in found.values():
        if Path(owner.data_dir) != server.data_dir:
            continue
        now = owner.model_copy(
            update={"server_url": server.url, "pid": server.pid, "pid_start": server.pid_start}
        )
        write_owner(now)
        index_owner(now, environ)
        claimed.append(now)
    return claimed


# a local command ----------------------------------------------------------------------------


def owner_running(owner: ServerOwner) -> bool:
    """Whether the server process the record names still runs (the same process: a PID given
    to another process since then does not count)."""
    if not pid_alive(owner.pid):
        return False
    if owner.pid_start is None:
        return True
    started = process_started(owner.pid)
    return started is None or started == owner.pid_start


@dataclass
class Resolved:
    """What a command names, and the server that manages it (if one does)."""

    owner: ServerOwner | None
    running: bool  # the owner's process runs
    project: Project | None  # as the command named it; None when there is no compose file
    missing: NoComposeFile | None  # why `project` is None

    def require(self) -> Project:
        if self.project is None:
            assert self.missing is not None
            raise self.missing
        return self.project


def resolve(
    files: Sequence[Path],
    project_name: str | None,
    environ: Mapping[str, str],
    cwd: Path,
    profiles: Sequence[str] = (),
) -> Resolved:
    """Open what the command names and find its owner: the index entry of an explicit
    `-p NAME` (the command may run anywhere), else the record in the project's state
    directory, the index entry of its name, or, without `-p`, a record naming its compose
    file (the server's work tree: there Compose's default name is not the server's)."""
    owner = indexed(project_name, environ) if project_name else None
    project: Project | None = None
    missing: NoComposeFile | None = None
    try:
        project = Project.open(list(files), project_name, environ, cwd=cwd, profiles=profiles)
    except NoComposeFile as e:
        missing = e
    if owner is None and project is not None:
        paths = project.paths()
        owner = read_owner(paths.state_dir) or indexed(paths.project, environ)
        if owner is None and not project_name:
            owner = _work_tree_owner(project, environ)
    return Resolved(
        owner=owner,
        running=owner is not None and owner_running(owner),
        project=project,
        missing=missing,
    )


def _work_tree_owner(project: Project, environ: Mapping[str, str]) -> ServerOwner | None:
    """A record naming the project's first compose file: in the state home next to it (where
    the server keeps it by default), else anywhere the index knows."""
    compose = str(project.compose_file)
    home = environ.get(STATE_HOME)
    base = Path(home) if home else project.compose_file.parent / ".conveyor"
    near = [read_owner(record.parent) for record in sorted(base.glob(f"*/{OWNER_FILE}"))]
    for owner in [*(o for o in near if o is not None), *indexed_all(environ)]:
        if compose in owner.compose_files:
            return owner
    return None


def open_owned(
    owner: ServerOwner,
    resolved: Resolved,
    environ: Mapping[str, str],
    cwd: Path,
    files: Sequence[Path] = (),
    profiles: Sequence[str] = (),
) -> Project:
    """The project as its server has it, for a command that goes on locally: the server's
    project name and state directory (so its releases, journal and HAProxy are the ones
    used), with the compose files the command found here, else the server's work tree's.
    conveyor.yaml's overrides (replicas, variables, ports) are not applied: a deploy from
    here deploys the files as they are."""
    state_dir = Path(owner.state_dir)
    have = resolved.project
    if have is not None and have.paths().state_dir.resolve() == state_dir:
        return have
    env = {**environ, STATE_HOME: str(state_dir.parent)}
    if have is not None:
        return Project.open(list(files), owner.project, env, cwd=cwd, profiles=profiles)
    work = Path(owner.work_tree)
    given = [Path(f) for f in owner.compose_files]
    return Project.open(given, owner.project, env, cwd=work, profiles=profiles)
