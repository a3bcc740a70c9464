"""The content-addressed blob store: naming, dedupe, atomicity, garbage collection."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from conveyor.ci.run.blobs import CHUNK, BlobStore
from conveyor.errors import BlobError


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def test_put_bytes_is_named_by_sha256_in_a_shard(blobs: BlobStore) -> None:
    digest = blobs.put_bytes(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    path = blobs.root / "objects" / digest[:2] / digest
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    with blobs.open(digest) as f:
        assert f.read() == b"hello"
    assert blobs.has(digest)
    assert blobs.size(digest) == 5


def test_same_content_is_stored_once(blobs: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"same")
    assert blobs.put_file(src) == blobs.put_bytes(b"same")
    assert list(blobs.digests()) == [hashlib.sha256(b"same").hexdigest()]


def test_large_file_streams_in_chunks(blobs: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(CHUNK * 2 + 123)
    src = tmp_path / "big"
    src.write_bytes(data)
    digest = blobs.put_file(src)
    assert digest == hashlib.sha256(data).hexdigest()
    assert blobs.verify(digest)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "", "g" * 64, "a" * 63])
def test_malformed_digests_never_become_paths(blobs: BlobStore, bad: str) -> None:
    with pytest.raises(BlobError, match="not a sha256 digest"):
        blobs.has(bad)


def test_missing_blob_is_a_clear_error(blobs: BlobStore) -> None:
    with pytest.raises(BlobError, match="no blob"):
        blobs.open("0" * 64)
    assert not blobs.has("0" * 64)


def test_failed_write_leaves_no_blob_and_no_temporary(blobs: BlobStore) -> None:
    class Broken(io.RawIOBase):
        calls = 0

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 1:
                raise OSError("disk went away")
            return b"partial"

    with pytest.raises(OSError, match="disk went away"):
        blobs.put_stream(Broken())  # type: ignore[arg-type]
    assert list(blobs.digests()) == []
    assert list((blobs.root / "tmp").iterdir()) == []


def test_verify_detects_corruption(blobs: BlobStore) -> None:
    digest = blobs.put_bytes(b"original")
    path = blobs.path(digest)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    assert not blobs.verify(digest)


def test_gc_removes_only_unreferenced_old_blobs(blobs: BlobStore) -> None:
    live = blobs.put_bytes(b"live")
    dead = blobs.put_bytes(b"dead!")
    report = blobs.gc({live}, min_age=0)
    assert (report.removed, report.freed_bytes, report.kept, report.kept_bytes) == (1, 5, 1, 4)
    assert blobs.has(live)
    assert not blobs.has(dead)


def test_gc_spares_young_blobs_a_job_is_still_saving(blobs: BlobStore) -> None:
    fresh = blobs.put_bytes(b"being saved")
    report = blobs.gc(set(), min_age=600)
    assert report.removed == 0
    assert blobs.has(fresh)


def test_storing_again_restarts_the_grace_period(blobs: BlobStore) -> None:
    digest = blobs.put_bytes(b"reused")
    old = blobs.path(digest).stat().st_mtime - 3600
    os.utime(blobs.path(digest), (old, old))
    blobs.put_bytes(b"reused")  # a new manifest is about to reference it
    assert blobs.gc(set(), min_age=600).removed == 0
    assert blobs.gc(set(), min_age=600, now=old + 7200 + 600).removed == 1
