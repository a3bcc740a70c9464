"""The sealed stream format: round trip, and every kind of tampering fails to open."""

from __future__ import annotations

import base64
import hashlib
import os
import struct

import pytest

from conveyor.errors import BackupCorrupt, BackupError
from conveyor.model.backup import BackupKeySource
from conveyor.provision.backup import stream
from conveyor.provision.backup.stream import (
    CHUNK,
    IterableReader,
    read_key,
    seal,
    unseal,
)

KEY = bytes(range(32))


def sealed_bytes(data: list[bytes], compression: str = "zstd") -> tuple[bytes, stream.Sealed]:
    s = seal(data, KEY, compression)  # type: ignore[arg-type]
    return b"".join(s.chunks()), s


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_round_trip_digest_and_sizes(compression: str) -> None:
    # Incompressible data bigger than one chunk: several chunks, the last one flagged.
    data = [os.urandom(700_000) for _ in range(4)]
    blob, s = sealed_bytes(data, compression)
    plain = b"".join(data)
    assert s.sha256 == hashlib.sha256(plain).hexdigest()
    assert s.size == len(plain)
    assert s.stored == len(blob)
    assert len(blob) > CHUNK  # more than one chunk was written
    # Read back in odd-sized pieces: the reader does not depend on chunk boundaries.
    pieces = [blob[i : i + 1000] for i in range(0, len(blob), 1000)]
    assert b"".join(unseal(pieces, KEY)) == plain


def test_empty_source_round_trips() -> None:
    blob, s = sealed_bytes([])
    assert b"".join(unseal([blob], KEY)) == b""
    assert s.size == 0


def test_compresses_compressible_data() -> None:
    _blob, s = sealed_bytes([b"a" * 1_000_000])
    assert s.stored < 10_000


def chunk_offsets(blob: bytes) -> list[tuple[int, int, bool]]:
    """(start, length, last) of each chunk record after the header."""
    out = []
    at = 14
    while at < len(blob):
        (length,) = struct.unpack(">I", blob[at : at + 4])
        size = length & 0x7FFF_FFFF
        out.append((at, size, bool(length & 0x8000_0000)))
        at += 4 + size
    return out


def big_blob() -> bytes:
    return sealed_bytes([os.urandom(CHUNK), os.urandom(CHUNK // 2)])[0]


def test_a_flipped_bit_fails() -> None:
    blob = bytearray(big_blob())
    blob[len(blob) // 2] ^= 0x01
    with pytest.raises(BackupCorrupt, match="authentication"):
        b"".join(unseal([bytes(blob)], KEY))


def test_a_wrong_key_fails() -> None:
    with pytest.raises(BackupCorrupt, match="authentication"):
        b"".join(unseal([big_blob()], bytes(32)))


def test_a_stream_cut_after_a_whole_chunk_fails() -> None:
    blob = big_blob()
    start, size, last = chunk_offsets(blob)[0]
    assert not last
    with pytest.raises(BackupCorrupt, match="cut short"):
        b"".join(unseal([blob[: start + 4 + size]], KEY))


def test_the_last_flag_cannot_be_set_on_an_earlier_chunk() -> None:
    blob = bytearray(big_blob())
    start, size, _ = chunk_offsets(bytes(blob))[0]
    blob[start : start + 4] = struct.pack(">I", size | 0x8000_0000)
    with pytest.raises(BackupCorrupt):
        b"".join(unseal([bytes(blob[: start + 4 + size])], KEY))


def test_swapped_chunks_fail() -> None:
    blob = sealed_bytes([os.urandom(CHUNK), os.urandom(CHUNK), os.urandom(10)])[0]
    (a, sa, _), (b, sb, _), _ = chunk_offsets(blob)
    first, second = blob[a : a + 4 + sa], blob[b : b + 4 + sb]
    swapped = blob[:a] + second + first + blob[b + 4 + sb :]
    with pytest.raises(BackupCorrupt, match="authentication"):
        b"".join(unseal([swapped], KEY))


def test_trailing_bytes_fail() -> None:
    with pytest.raises(BackupCorrupt, match="follow"):
        b"".join(unseal([big_blob(), b"x"], KEY))


def test_not_a_backup() -> None:
    with pytest.raises(BackupCorrupt, match="magic"):
        b"".join(unseal([b"PK\x03\x04" + bytes(40)], KEY))


def test_reader_is_a_file_over_chunks() -> None:
    # Raw reads may be short (as a pipe's are); together they give every byte, then b"".
    reader = IterableReader([b"ab", b"", b"cdef"])
    got = b"".join(iter(lambda: reader.read(3), b""))
    assert got == b"abcdef"
    assert reader.read(5) == b""
    assert IterableReader([b"ab", b"cd"]).read() == b"abcd"


def test_key_from_env_hex_or_base64_and_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = BackupKeySource(env="K")
    assert read_key(source, {"K": KEY.hex()}) == KEY
    assert read_key(source, {"K": base64.b64encode(KEY).decode()}) == KEY
    raw = tmp_path / "raw.key"
    raw.write_bytes(KEY)
    assert read_key(BackupKeySource(file=str(raw)), {}) == KEY
    text = tmp_path / "text.key"
    text.write_text(base64.b64encode(KEY).decode() + "\n")
    assert read_key(BackupKeySource(file=str(text)), {}) == KEY


def test_key_problems_say_what_to_do(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BackupError, match="no backup key"):
        read_key(BackupKeySource(), {})
    with pytest.raises(BackupError, match="K is not set"):
        read_key(BackupKeySource(env="K"), {})
    with pytest.raises(BackupError, match="32 bytes"):
        read_key(BackupKeySource(env="K"), {"K": "abcd"})
    with pytest.raises(BackupError, match="cannot read"):
        read_key(BackupKeySource(file=str(tmp_path / "missing")), {})
