"""Which of a replica's files a fleet copies to its host, where they land, and which
named volumes hold a service to a host (docs/fleet.md, "Files and volumes on a fleet"). Pure.

On one host a replica mounts the controller's own files. On a fleet the replica's host has
other disks, so what the controller resolves for it is copied there first:

- Compose `secrets` and `configs` (a `file:`, or text Conveyor wrote to a file) always: Compose
  reads them from the machine that runs it;
- bind mounts whose source is inside the project directory (the compose file's): a file or a
  directory of the project (`./nginx.conf:/etc/nginx/nginx.conf:ro`).

A bind mount of a path outside the project (`/var/run/docker.sock`, `/srv/data`) is the host's
own and is mounted as written.

Copies are content-addressed: `/var/lib/conveyor/<project>/files/<digest>/<name>`, the digest
over the content and the mode Compose asks for (`copy_digest`). Unchanged content is never
copied twice; a release keeps naming the copy it started with while a rollout starts the next.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from conveyor.model.release import Observed
from conveyor.model.stack import Service, Stack
from conveyor.plan.actions import Plan

FILES_ROOT = PurePosixPath("/var/lib/conveyor")
DIGEST_LENGTH = 64  # sha256, hex


def files_dir(project: str) -> PurePosixPath:
    """Where the project's copies are on every app host."""
    return FILES_ROOT / project / "files"


def project_dir(stack: Stack) -> PurePosixPath:
    """The Compose project directory: the compose file's (relative sources start there)."""
    return PurePosixPath(stack.file).parent


def inside(path: str, directory: PurePosixPath) -> bool:
    """Whether `path` (absolute, normalized: spec.context resolves every host path) is
    `directory` or under it."""
    p = PurePosixPath(path)
    return p == directory or directory in p.parents


def copy_digest(content: str, mode: int | None = None) -> str:
    """The name of a copy: its content's digest, and the mode it must have when Compose asks
    for one (the same file mounted with two modes is two copies)."""
    if mode is None:
        return content
    return hashlib.sha256(f"{content}\0{mode:o}".encode()).hexdigest()


def copy_name(source: str) -> str:
    """A copy keeps its source's own name (a file's name, a directory's files, look as on
    the controller)."""
    return PurePosixPath(source).name or "root"


def host_path(project: str, digest: str, source: str) -> str:
    """Where the copy of `source` named `digest` is on a host."""
    return str(files_dir(project) / digest / copy_name(source))


def digest_in(path: str, project: str) -> str | None:
    """The copy a host path names (what a container mounts), or None when it is not one."""
    p = PurePosixPath(path)
    base = files_dir(project)
    if base not in p.parents:
        return None
    digest = p.relative_to(base).parts[0]
    return digest if _is_digest(digest) else None


def _is_digest(name: str) -> bool:
    return len(name) == DIGEST_LENGTH and all(c in "0123456789abcdef" for c in name)


# ---- what is copied ----------------------------------------------------------------------------


def project_binds(service: Service, stack: Stack) -> tuple[str, ...]:
    """The service's bind-mount sources inside the project directory: copied."""
    root = project_dir(stack)
    return tuple(
        dict.fromkeys(
            m.source
            for m in service.volumes
            if m.type == "bind" and m.source and inside(m.source, root)
        )
    )


def host_binds(service: Service, stack: Stack) -> tuple[str, ...]:
    """The service's bind-mount sources outside the project: the host's own, not copied."""
    root = project_dir(stack)
    return tuple(
        dict.fromkeys(
            m.source
            for m in service.volumes
            if m.type == "bind" and m.source and not inside(m.source, root)
        )
    )


def release_files(service: Service, stack: Stack) -> tuple[str, ...]:
    """The controller's files a fleet release records a digest of (a change of content is
    then a new release and a rollout): `file:` configs and secrets, and project bind mounts.
    Text configs are in the spec already; an `environment:` secret is read when it starts."""
    files = [m.file for m in service.configs if m.file is not None]
    for m in service.secrets:
        secret = stack.secrets.get(m.source)
        if secret is not None and secret.file:
            files.append(secret.file)
    files.extend(project_binds(service, stack))
    return tuple(dict.fromkeys(files))


def config_modes(service: Service) -> dict[str, int]:
    """Container path -> the mode Compose asks for, of `file:` configs that name one (text
    configs are written with theirs already; see deploy.config_files)."""
    return {m.target: m.mode for m in service.configs if m.file is not None and m.mode is not None}


# ---- rewriting a replica's mounts ---------------------------------------------------------------


def rewrite_binds(service: Service, moved: Mapping[str, str]) -> Service:
    """`service` with each bind mount whose source is in `moved` mounting the copy instead."""
    if not any(m.type == "bind" and m.source in moved for m in service.volumes):
        return service
    volumes = tuple(
        m.model_copy(update={"source": moved[m.source]})
        if m.type == "bind" and m.source is not None and m.source in moved
        else m
        for m in service.volumes
    )
    return service.model_copy(update={"volumes": volumes})


def rewrite_files(files: Mapping[str, str], moved: Mapping[str, str]) -> dict[str, str]:
    """Container path -> host file, each controller file replaced by its copy (keyed by the
    container path: one file mounted at two paths with two modes is two copies)."""
    return {target: moved.get(target, source) for target, source in files.items()}


# ---- removing copies no longer used --------------------------------------------------------------


def kept(mounted: Iterable[str], project: str, needed: Iterable[str] = ()) -> set[str]:
    """The copies a host keeps: those a container of the project mounts (`mounted`: the host
    paths its containers bind-mount, running or not) and those about to be (`needed`); the
    others are no longer used and go."""
    used = {d for d in (digest_in(p, project) for p in mounted) if d is not None}
    return used | set(needed)


# ---- named volumes hold a service to its host ---------------------------------------------------


def named_volumes(service: Service, stack: Stack) -> tuple[str, ...]:
    """The project's own named volumes the service mounts (Compose keys). External ones are
    the host's own (or shared by their driver): they do not pin."""
    out: list[str] = []
    for m in service.volumes:
        if m.type != "volume" or not m.source:
            continue
        vol = stack.volumes.get(m.source)
        if vol is not None and vol.external:
            continue
        out.append(m.source)
    return tuple(dict.fromkeys(out))


def volumes_by_key(
    known: Mapping[str, Iterable[str]], project: str, inventory: Iterable[str]
) -> dict[str, list[str]]:
    """Named volume (its Compose key) -> the hosts holding it, in `known`'s sorted host
    order: `known` is host -> the Docker names of the volumes it holds (listed from the host,
    or remembered); hosts not in `inventory` and other projects' volumes are left out."""
    hosts = set(inventory)
    prefix = f"{project}_"  # Compose's (and the runtime's) <project>_<name>
    where: dict[str, list[str]] = {}
    for holder, names in sorted(known.items()):
        if holder not in hosts:
            continue
        for docker_name in names:
            if docker_name.startswith(prefix):
                where.setdefault(docker_name[len(prefix) :], []).append(holder)
    return where


def volume_pins(
    services: Mapping[str, Service], stack: Stack, volume_hosts: Mapping[str, Iterable[str]]
) -> dict[str, tuple[str, ...]]:
    """Service -> the hosts it must run on: those holding every one of its named volumes
    that exists somewhere (`volume_hosts`: volume key -> hosts, any state). A service whose
    volumes exist nowhere yet is free (its first replica's host creates them)."""
    pins: dict[str, tuple[str, ...]] = {}
    for name, svc in services.items():
        where: set[str] | None = None
        for key in named_volumes(svc, stack):
            hosts = set(volume_hosts.get(key, ()))
            if not hosts:
                continue
            # Volumes split over hosts (made before pinning existed): any of them.
            where = hosts if where is None else (where & hosts) or (where | hosts)
        if where is not None:
            pins[name] = tuple(sorted(where))
    return pins


def split_volumes(plan: Plan, stack: Stack, observed: Observed) -> list[str]:
    """A note for each service `plan` starts a replica of whose replicas, once it is carried
    out, run on more than one host while mounting a named volume of the project: each host
    has its own copy of that volume (a volume's data stays on its host), so the replicas do
    not share data as they would on one host (examples/shop's orders). Volumes with driver
    options are left out (they may be shared by their driver: NFS), and global services (a
    volume per host is what they are for)."""
    going = {s.replica for s in plan.steps if s.kind in ("stop", "remove")}
    hosts: dict[str, set[str]] = {}
    for r in observed.replicas:
        if r.running and r.host and r.replica not in going:
            hosts.setdefault(r.service, set()).add(r.host)
    starting: set[str] = set()
    for step in plan.steps:
        if step.kind == "start" and step.host:
            starting.add(step.service)
            hosts.setdefault(step.service, set()).add(step.host)
    notes: list[str] = []
    for name in sorted(starting):
        service = stack.services.get(name)
        where = sorted(hosts.get(name, ()))
        if service is None or len(where) < 2:
            continue
        if service.placement is not None and service.placement.mode == "global":
            continue  # one replica per host, each with its host's volume: what global means
        local = [
            key
            for key in named_volumes(service, stack)
            if key in stack.volumes
            and not stack.volumes[key].driver_opts
            and stack.volumes[key].driver in (None, "local")
        ]
        if local:
            notes.append(
                f"{name}: its replicas run on {', '.join(where)}, each host with its own "
                f"{', '.join(local)} volume (a volume's data stays on its host): they do not "
                "share data as on one host; to share it, keep the service on one host "
                f"(deploy.placement.constraints: [node.hostname=={where[0]}]) or at one replica"
            )
    return notes
