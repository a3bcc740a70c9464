"""A replica's files copied to its fleet host before it starts (docs/fleet.md, "Files and
volumes on a fleet"); which files and where they land is plan.fleet_files.

How they travel: over the host's SSH link (host.ssh_command), as one tar on the stdin of a
script that unpacks it as the SSH user (root: owners and modes kept, `--numeric-owner`; the
deploy user of a provisioned host, which owns /var/lib/conveyor: modes kept, every copy its
own).
Not the engine's `put_archive` through the tunnel: that writes into a container, so every
copy would need a helper container started on the host (seconds each on these hosts), and
the files must be on the host's own disk for a bind mount anyway.

Per replica start, one SSH call lists the copies the host has and removes those no
container of the project mounts any more (`sync_script`); a second one, only when a copy is
missing, sends it (`receive_script`). Each copy is unpacked beside the others and renamed
into place: a copy is whole or absent, even if the link drops mid-way.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError, RuntimeAdapterError
from conveyor.host.ssh_command import ssh_script, sudo_hint
from conveyor.model.fleet import FleetHost
from conveyor.model.stack import Service, Stack
from conveyor.plan.fleet_files import (
    config_modes,
    copy_digest,
    copy_name,
    files_dir,
    host_path,
    kept,
    release_files,
    rewrite_binds,
    rewrite_files,
)
from conveyor.runtime.protocol import ReplicaRun

_CHUNK = 1 << 20
# Seconds for one copy to travel; large project directories are the reason it is long.
UPLOAD_TIMEOUT = 600.0

Ssh = Callable[..., str]  # host.ssh_command.ssh_script's signature


# ---- digests (on the controller) ----------------------------------------------------------------


def content_digest(path: Path) -> str:
    """sha256 of a file or a directory tree as a copy keeps it: every entry's relative name,
    kind, permission bits and owner, a file's bytes, a link's target (not followed).
    Raises ConveyorError when `path` does not exist."""
    h = hashlib.sha256()
    try:
        _feed(h, path, "")
    except FileNotFoundError as e:
        raise ConveyorError(f"{e.filename or path} does not exist on this machine") from None
    return h.hexdigest()


def _feed(h: hashlib._Hash, path: Path, name: str) -> None:
    st = path.lstat()
    mode = stat.S_IMODE(st.st_mode)
    head = f"{name}\0{mode:o}\0{st.st_uid}:{st.st_gid}\0"
    if stat.S_ISLNK(st.st_mode):
        h.update(f"l{head}{os.readlink(path)}\0".encode())
    elif stat.S_ISDIR(st.st_mode):
        h.update(f"d{head}".encode())
        for child in sorted(os.listdir(path)):
            _feed(h, path / child, f"{name}/{child}")
    elif stat.S_ISREG(st.st_mode):
        h.update(f"f{head}{st.st_size}\0".encode())
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    # sockets, fifos, devices: not copied (tar leaves them out), so not hashed either


def release_digests(service: Service, stack: Stack) -> dict[str, str]:
    """What a fleet release records of `service`: each controller file its replicas mount
    (plan.fleet_files.release_files) -> its content digest."""
    out: dict[str, str] = {}
    for source in release_files(service, stack):
        try:
            out[source] = content_digest(Path(source))
        except ConveyorError as e:
            raise ConveyorError(
                f"{stack.file}: services.{service.name}: {e} (a fleet copies the files a "
                "replica mounts to its host)"
            ) from None
    return out


# ---- scripts run on the host (pure) --------------------------------------------------------------


def sync_script(project: str, keep: Iterable[str]) -> str:
    """On the host: make the project's files directory (its owner's only, the SSH user's:
    secrets are copied there), remove every copy not in `keep`, print those left."""
    base = shlex.quote(str(files_dir(project)))
    kept = " ".join(sorted(set(keep)))
    return f"""mkdir -p {base}
chmod 0700 {base}
cd {base}
keep=' {kept} '
for d in *; do
  [ -d "$d" ] || continue
  case "$d" in *[!0-9a-f]*) continue ;; esac
  [ "${{#d}}" -eq 64 ] || continue
  case "$keep" in
    *" $d "*) echo "$d" ;;
    *) rm -rf -- "$d" ;;
  esac
done
"""


def receive_script(project: str) -> str:
    """On the host: unpack the tar on stdin beside the copies, then rename each copy into
    place (one that appeared meanwhile is kept)."""
    base = shlex.quote(str(files_dir(project)))
    return f"""mkdir -p {base}
chmod 0700 {base}
tmp=$(mktemp -d {base}/.incoming.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
tar -x -p --numeric-owner -C "$tmp" -f -
for d in "$tmp"/*; do
  [ -e "$d" ] || continue
  n=${{d##*/}}
  if [ -e {base}/"$n" ]; then rm -rf -- "$d"; else mv -- "$d" {base}/"$n"; fi
done
"""


def missing_script(paths: Iterable[str]) -> str:
    """On the host: print each of `paths` that does not exist there."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    return f'for p in {quoted}; do [ -e "$p" ] || echo "$p"; done\n'


# ---- copies --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """One file or directory of the controller a replica mounts, as its host keeps it."""

    source: str  # on the controller
    digest: str  # the copy's name on the host (plan.fleet_files.copy_digest)
    mode: int | None  # the mode Compose asks for (a `file:` config's `mode`)
    # The controller's content is no longer what the release recorded (a rollback after the
    # file changed): only a copy the host already has can serve.
    stale: bool = False


def copies_of(req: ReplicaRun) -> tuple[dict[str, Copy], dict[str, Copy]]:
    """The copies `req` needs: by container path (secrets and configs), by source (project
    bind mounts, which the release names in `req.files`)."""
    modes = config_modes(req.service)
    seen: dict[str, str] = {}

    def copy(source: str, mode: int | None) -> Copy:
        now = seen.get(source) or content_digest(Path(source))
        seen[source] = now
        recorded = req.files.get(source, now)
        return Copy(source, copy_digest(recorded, mode), mode, stale=recorded != now)

    by_target = {t: copy(s, modes.get(t)) for t, s in sorted(req.secret_files.items())}
    binds = {
        m.source
        for m in req.service.volumes
        if m.type == "bind" and m.source is not None and m.source in req.files
    }
    by_source = {s: copy(s, None) for s in sorted(binds)}
    return by_target, by_source


def write_archive(copies: Iterable[Copy], out: Path) -> None:
    """A tar of `copies`, each under `<digest>/<its name>` (the mode Compose asks for set on
    the file itself)."""

    def mode_of(wanted: int | None) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
        def apply(info: tarfile.TarInfo) -> tarfile.TarInfo:
            if wanted is not None and info.isfile():
                info.mode = wanted
            return info

        return apply

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for c in copies:
            tar.add(c.source, arcname=f"{c.digest}/{copy_name(c.source)}", filter=mode_of(c.mode))


class FleetFiles:
    """Copies replicas' files to fleet hosts over SSH."""

    def __init__(self, known_hosts: Path | None = None, ssh: Ssh = ssh_script) -> None:
        self.known_hosts = known_hosts
        self.ssh = ssh

    def ship(
        self,
        host: FleetHost,
        req: ReplicaRun,
        mounted: Iterable[str],
        warn: Callable[[str], None] | None = None,
    ) -> ReplicaRun:
        """`req` mounting copies on `host` of every controller file it names, copied first
        when the host lacks them. `mounted`: what the project's containers on the host mount
        now (copies no container mounts, and `req` does not need, are removed)."""
        by_target, by_source = copies_of(req)
        needed = {c.digest: c for c in (*by_target.values(), *by_source.values())}
        if not needed:
            return req
        keep = kept(mounted, req.project, needed)
        present = set(self._ssh(host, sync_script(req.project, keep)).split())
        missing = [c for d, c in sorted(needed.items()) if d not in present]
        stale = [c for c in missing if c.stale]
        if stale:
            names = ", ".join(c.source for c in stale)
            raise RuntimeAdapterError(
                f"{req.replica}: release {req.release} mounts {names} as it was then; the "
                f"file changed on this machine since and host {host.name} has no copy of "
                "the old one (deploy the current files instead)"
            )
        if missing:
            with tempfile.TemporaryDirectory(prefix="conveyor-files-") as scratch:
                archive = Path(scratch) / "files.tar"
                write_archive(missing, archive)
                self._ssh(host, receive_script(req.project), archive)
        if warn is not None:
            for m in req.service.volumes:
                if m.type == "bind" and m.source in by_source and not m.read_only:
                    warn(
                        f"{req.replica}: {m.source} is bind-mounted writable: on a fleet it "
                        f"is a copy on host {host.name}, and what the replica writes there "
                        "stays on that host (a named volume holds data)"
                    )
        return req.model_copy(
            update={
                "secret_files": rewrite_files(
                    req.secret_files,
                    {t: host_path(req.project, c.digest, c.source) for t, c in by_target.items()},
                ),
                "service": rewrite_binds(
                    req.service,
                    {s: host_path(req.project, c.digest, s) for s, c in by_source.items()},
                ),
            }
        )

    def missing(self, host: FleetHost, paths: Iterable[str]) -> list[str]:
        """Which of `paths` do not exist on `host`."""
        wanted = sorted(set(paths))
        if not wanted:
            return []
        return self._ssh(host, missing_script(wanted)).splitlines()

    def _ssh(self, host: FleetHost, script: str, archive: Path | None = None) -> str:
        try:
            return self.ssh(
                host,
                script,
                known_hosts=self.known_hosts,
                timeout=UPLOAD_TIMEOUT if archive else 60.0,
                stdin_file=archive,
            )
        except ConveyorError as e:
            raise RuntimeAdapterError(
                f"copying files to host {host.name}: {e}{sudo_hint(host, str(e))}"
            ) from e
