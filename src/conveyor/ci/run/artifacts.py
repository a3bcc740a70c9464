"""Job artifacts: collected from a job's workspace into the blob store, restored into later jobs.

One JSON manifest per job (`manifests/<job>.json`) lists path → entry (digest, mode, size) with
the job id, `created_at` and `expire_at` (from `artifacts:expire_in`; None keeps them forever).
File selection follows GitLab Runner (see `conveyor.ci.run.snapshot`). Whether a job uploads at all
(`artifacts:when` against the job's outcome) is the caller's decision: `outcome.when_applies`.

Expiry removes manifests only. The bytes go when the caller sweeps the blob store with every
live digest it knows (artifacts *and* caches share blobs):

    blobs.gc(artifacts.live_digests() | caches.live_digests())
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from conveyor.ci.run.blobs import BlobStore
from conveyor.ci.run.snapshot import (
    RestoreReport,
    Snapshot,
    capture,
    manifest_name,
    read_json,
    restore,
    select_paths,
    write_json_atomic,
)
from conveyor.errors import ArtifactError
from conveyor.model.pipeline import ArtifactsSpec
from conveyor.model.stack import Frozen


class ArtifactManifest(Frozen):
    job_id: str
    created_at: float  # seconds since the epoch
    expire_at: float | None = None  # None: never expires
    name: str | None = None  # `artifacts:name`, for downloads
    snapshot: Snapshot = Snapshot()

    @property
    def files(self) -> int:
        return self.snapshot.files

    @property
    def size(self) -> int:
        return self.snapshot.size

    def expired(self, now: float) -> bool:
        return self.expire_at is not None and self.expire_at <= now


@dataclass(frozen=True)
class CollectResult:
    manifest: ArtifactManifest
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExpireReport:
    removed: int  # manifests deleted
    files: int  # files they listed
    bytes: int  # bytes they listed (shared blobs are freed only by the blob sweep)
    kept: int  # expired, but still referenced by a running pipeline


class ArtifactStore:
    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = root
        self.blobs = blobs

    def _path(self, job_id: str) -> Path:
        return self.root / manifest_name(job_id)

    def collect(
        self, job_id: str, workspace: Path, spec: ArtifactsSpec, *, now: float | None = None
    ) -> CollectResult:
        """Store the files `spec` names and record the job's manifest (replacing an older one:
        a retried job's artifacts are the retry's)."""
        created = time.time() if now is None else now
        chosen = select_paths(workspace, spec.paths, spec.exclude, spec.untracked)
        snapshot, capture_warnings = capture(workspace, chosen.paths, self.blobs)
        manifest = ArtifactManifest(
            job_id=job_id,
            created_at=created,
            expire_at=None if spec.expire_in is None else created + spec.expire_in,
            name=spec.name,
            snapshot=snapshot,
        )
        write_json_atomic(self._path(job_id), manifest.model_dump_json(indent=1))
        return CollectResult(manifest, chosen.warnings + tuple(capture_warnings))

    def get(self, job_id: str) -> ArtifactManifest | None:
        path = self._path(job_id)
        if not path.exists():
            return None
        return _load(path)

    def manifests(self) -> Iterator[ArtifactManifest]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*.json")):
            yield _load(path)

    def restore(self, manifest: ArtifactManifest | str, workspace: Path) -> RestoreReport:
        """Unpack a job's artifacts into `workspace` (a manifest, or the id of a job)."""
        if isinstance(manifest, str):
            found = self.get(manifest)
            if found is None:
                raise ArtifactError(
                    f"job {manifest} has no artifacts (none kept, or expired): run it again"
                )
            manifest = found
        return restore(manifest.snapshot, workspace, self.blobs)

    def expire(self, now: float, keep: Collection[str] = ()) -> ExpireReport:
        """Delete manifests whose `expire_at` has passed, except jobs in `keep` (artifacts a
        running pipeline still needs, as GitLab locks a pipeline's artifacts while it runs)."""
        removed = files = size = kept = 0
        for manifest in list(self.manifests()):
            if not manifest.expired(now):
                continue
            if manifest.job_id in keep:
                kept += 1
                continue
            self._path(manifest.job_id).unlink(missing_ok=True)
            removed += 1
            files += manifest.files
            size += manifest.size
        return ExpireReport(removed=removed, files=files, bytes=size, kept=kept)

    def live_digests(self) -> set[str]:
        live: set[str] = set()
        for manifest in self.manifests():
            live |= manifest.snapshot.digests()
        return live


def artifact_store(state_dir: Path) -> ArtifactStore:
    """The artifacts of a project's CI state directory (`.conveyor/ci`), over its blob store."""
    return ArtifactStore(state_dir / "artifacts", BlobStore(state_dir / "blobs"))


def _load(path: Path) -> ArtifactManifest:
    try:
        return ArtifactManifest.model_validate(read_json(path))
    except (OSError, ValueError, ValidationError) as e:
        raise ArtifactError(
            f"{path}: unreadable artifacts manifest: {e}; delete it and run the job again"
        ) from e
