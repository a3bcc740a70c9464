"""A content-addressed blob store on disk: the bytes behind artifacts and caches.

A blob's name is the SHA-256 of its content (64 lowercase hex digits), stored at
`objects/<first two digits>/<digest>`. Sharding keeps directories small; content addressing
makes a file that several jobs produce (or a cache saved twice) cost its bytes once.

Writes are atomic: bytes go to `tmp/`, are fsynced, then renamed into place, so a reader never
sees half a blob and a crash leaves at most a stray temporary file. Blobs are read-only (0444).

Garbage collection is mark-and-sweep driven by the caller, who knows which manifests are live:
`gc(live)` deletes every blob not in `live`. A blob written moments ago may belong to a
manifest not yet saved, so blobs younger than `min_age` seconds are kept (re-storing an
existing blob refreshes its age for the same reason).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from conveyor.errors import BlobError

CHUNK = 1024 * 1024
DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_GONE = ": its bytes were removed; run the job that produced them again"
DEFAULT_MIN_AGE = 600.0  # seconds a fresh blob is safe from gc (a job still saving its manifest)


@dataclass(frozen=True)
class GcReport:
    removed: int
    freed_bytes: int
    kept: int
    kept_bytes: int


def check_digest(digest: str) -> str:
    """Return `digest` if it is a well-formed SHA-256 name; a manifest is data from disk and must
    never steer a path outside the store."""
    if not DIGEST_RE.fullmatch(digest):
        raise BlobError(
            f"not a sha256 digest: {digest!r}: a stored manifest is damaged; run the job that "
            "produced it again"
        )
    return digest


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._objects = root / "objects"
        self._tmp = root / "tmp"

    def path(self, digest: str) -> Path:
        check_digest(digest)
        return self._objects / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobError(f"no blob {digest}{_GONE}") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise BlobError(f"no blob {digest}{_GONE}") from None

    def put_bytes(self, data: bytes) -> str:
        return self._store(iter((data,)))

    def put_stream(self, stream: BinaryIO) -> str:
        return self._store(iter(lambda: stream.read(CHUNK), b""))

    def put_file(self, path: Path) -> str:
        with path.open("rb") as f:
            return self.put_stream(f)

    def verify(self, digest: str) -> bool:
        """Whether the stored bytes still hash to their name (disk rot, tampering)."""
        h = hashlib.sha256()
        with self.open(digest) as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
        return h.hexdigest() == digest

    def digests(self) -> Iterator[str]:
        if not self._objects.is_dir():
            return
        for shard in sorted(self._objects.iterdir()):
            for blob in sorted(shard.iterdir()):
                if DIGEST_RE.fullmatch(blob.name):
                    yield blob.name

    def gc(
        self, live: Iterable[str], *, min_age: float = DEFAULT_MIN_AGE, now: float | None = None
    ) -> GcReport:
        """Delete blobs not in `live` (and stale temporary files) older than `min_age`."""
        keep = set(live)
        cutoff = (time.time() if now is None else now) - min_age
        removed = freed = kept = kept_bytes = 0
        for digest in list(self.digests()):
            path = self.path(digest)
            st = path.stat()
            if digest in keep or st.st_mtime > cutoff:
                kept += 1
                kept_bytes += st.st_size
                continue
            path.unlink(missing_ok=True)
            removed += 1
            freed += st.st_size
        if self._tmp.is_dir():
            for stray in self._tmp.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if stray.stat().st_mtime <= cutoff:
                        stray.unlink()
        return GcReport(removed=removed, freed_bytes=freed, kept=kept, kept_bytes=kept_bytes)

    def _store(self, chunks: Iterator[bytes]) -> str:
        self._tmp.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            final = self.path(digest)
            if final.exists():
                # Dedupe; touching restarts the gc grace period for a blob about to be referenced.
                os.utime(final)
                tmp.unlink()
                return digest
            tmp.chmod(0o444)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            return digest
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _fsync_dir(path: Path) -> None:
    """Make the rename durable: a crash after a manifest names this blob must not lose it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
