"""The stored form of a backup part: compressed, then encrypted in authenticated chunks,
streamed (no part is ever held whole in memory). docs/backups.md describes the format:

    header  b"CVB1" | version (1) | compression (1: zstd, 2: gzip) | nonce prefix (8 random)
    chunk*  length (4, big-endian; top bit set on the last chunk) | AES-256-GCM ciphertext+tag

Each chunk's nonce is the prefix and its 4-byte index; its associated data is the header,
the index and the last-chunk flag. So a flipped bit, a reordered, dropped or added chunk, or
a stream cut short (no chunk flagged last) all fail to open: `BackupCorrupt`.

`seal` also digests the plaintext (sha256) so the manifest can name it; `unseal` yields the
plaintext back, and the caller compares its digest with the manifest's.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conveyor.errors import BackupCorrupt, BackupError
from conveyor.model.backup import BackupKeySource, Compression

MAGIC = b"CVB1"
VERSION = 1
CHUNK = 1 << 20  # compressed bytes per encrypted chunk
KEY_BYTES = 32
_LAST = 0x8000_0000
_CODES: dict[Compression, int] = {"zstd": 1, "gzip": 2}
_HEADER = struct.Struct(">4sBB8s")

_zstd: Any
try:  # the wheel is a dependency; a host without it still backs up, with gzip
    import zstandard as _zstd
except ImportError:  # pragma: no cover - depends on the install
    _zstd = None


def default_compression() -> Compression:
    return "zstd" if _zstd is not None else "gzip"


# --- the key ---------------------------------------------------------------------------------


def read_key(source: BackupKeySource, environ: dict[str, str] | Any) -> bytes:
    """The 32-byte key from the configured file or environment variable: 64 hex digits or
    base64 text (a file may also hold the 32 raw bytes). Raises BackupError saying what to do."""
    if source.file is not None:
        try:
            raw = Path(source.file).read_bytes()
        except OSError as e:
            raise BackupError(f"cannot read the backup key file {source.file}: {e}") from None
        if len(raw) == KEY_BYTES:
            return raw
        return _decode_key(raw.decode("ascii", "replace").strip(), f"file {source.file}")
    if source.env is not None:
        text = environ.get(source.env)
        if not text:
            raise BackupError(f"the backup key's variable {source.env} is not set")
        return _decode_key(text.strip(), f"variable {source.env}")
    raise BackupError(
        "no backup key: set backups.key.file (a path on this host) or backups.key.env in "
        "conveyor.yaml; make one with `head -c 32 /dev/urandom | base64`"
    )


def _decode_key(text: str, where: str) -> bytes:
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(key) == KEY_BYTES:
            return key
    raise BackupError(f"the backup key in {where} must be 32 bytes as 64 hex digits or base64")


# --- compression -----------------------------------------------------------------------------


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


def _compressor(compression: Compression) -> _Compressor:
    if compression == "zstd":
        if _zstd is None:
            raise BackupError("zstd compression needs the zstandard package")
        compressor: _Compressor = _zstd.ZstdCompressor(level=3).compressobj()
        return compressor
    return zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing


def _decompressor(compression: Compression) -> _Decompressor:
    if compression == "zstd":
        if _zstd is None:
            raise BackupError("this backup is zstd-compressed: install the zstandard package")
        decompressor: _Decompressor = _zstd.ZstdDecompressor().decompressobj()
        return decompressor
    return zlib.decompressobj(16 + zlib.MAX_WBITS)


# --- sealing ---------------------------------------------------------------------------------


@dataclass
class Sealed:
    """The sealed stream of one part; `sha256`, `size` and `stored` are final once `chunks`
    is exhausted."""

    source: Iterable[bytes]
    key: bytes
    compression: Compression
    sha256: str = ""
    size: int = 0
    stored: int = 0
    _digest: Any = field(default_factory=hashlib.sha256, repr=False)

    def chunks(self) -> Iterator[bytes]:
        aes = AESGCM(self.key)
        prefix = os.urandom(8)
        header = _HEADER.pack(MAGIC, VERSION, _CODES[self.compression], prefix)
        yield header
        self.stored = len(header)
        compressor = _compressor(self.compression)
        pending = bytearray()
        index = 0
        for data in self.source:
            if not data:
                continue
            self._digest.update(data)
            self.size += len(data)
            pending += compressor.compress(data)
            while len(pending) >= CHUNK:
                block = bytes(pending[:CHUNK])
                del pending[:CHUNK]
                out = _seal_chunk(aes, header, prefix, index, block, last=False)
                self.stored += len(out)
                index += 1
                yield out
        pending += compressor.flush()
        # The rest, possibly empty, as the one chunk flagged last.
        while len(pending) > CHUNK:
            block = bytes(pending[:CHUNK])
            del pending[:CHUNK]
            out = _seal_chunk(aes, header, prefix, index, block, last=False)
            self.stored += len(out)
            index += 1
            yield out
        out = _seal_chunk(aes, header, prefix, index, bytes(pending), last=True)
        self.stored += len(out)
        self.sha256 = self._digest.hexdigest()
        yield out


def seal(source: Iterable[bytes], key: bytes, compression: Compression) -> Sealed:
    return Sealed(source=source, key=key, compression=compression)


def _seal_chunk(
    aes: AESGCM, header: bytes, prefix: bytes, index: int, data: bytes, *, last: bool
) -> bytes:
    ciphertext = aes.encrypt(_nonce(prefix, index), data, _aad(header, index, last))
    length = len(ciphertext) | (_LAST if last else 0)
    return struct.pack(">I", length) + ciphertext


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">IB", index, 1 if last else 0)


# --- opening ---------------------------------------------------------------------------------


def unseal(stored: Iterable[bytes], key: bytes) -> Iterator[bytes]:
    """The plaintext of a sealed stream, chunk by chunk. Raises BackupCorrupt when any part
    fails authentication, the stream is cut short, or bytes follow its last chunk."""
    reader = _Reader(iter(stored))
    header = reader.exactly(_HEADER.size, "the header")
    magic, version, code, prefix = _HEADER.unpack(header)
    if magic != MAGIC or version != VERSION:
        raise BackupCorrupt("not a Conveyor backup stream (wrong magic or version)")
    compression = next((c for c, n in _CODES.items() if n == code), None)
    if compression is None:
        raise BackupCorrupt(f"unknown compression code {code}")
    aes = AESGCM(key)
    decompressor = _decompressor(compression)
    index = 0
    while True:
        (length,) = struct.unpack(">I", reader.exactly(4, f"chunk {index}'s length"))
        last = bool(length & _LAST)
        ciphertext = reader.exactly(length & ~_LAST, f"chunk {index}")
        try:
            data = aes.decrypt(_nonce(prefix, index), ciphertext, _aad(header, index, last))
        except InvalidTag:
            raise BackupCorrupt(
                f"chunk {index} fails authentication: the object was altered or the key "
                "is not the one it was made with"
            ) from None
        try:
            plain = decompressor.decompress(data)
        except (zlib.error, gzip.BadGzipFile, Exception) as e:  # zstd raises ZstdError
            raise BackupCorrupt(f"chunk {index} does not decompress: {e}") from None
        if plain:
            yield plain
        index += 1
        if last:
            break
    if reader.more():
        raise BackupCorrupt("bytes follow the last chunk")


class _Reader:
    """Exact reads over an iterator of byte strings of any size."""

    def __init__(self, source: Iterator[bytes]) -> None:
        self._source = source
        self._buffer = bytearray()

    def exactly(self, count: int, what: str) -> bytes:
        while len(self._buffer) < count:
            data = next(self._source, None)
            if data is None:
                raise BackupCorrupt(f"the stream ends inside {what}: it was cut short")
            self._buffer += data
        out = bytes(self._buffer[:count])
        del self._buffer[:count]
        return out

    def more(self) -> bool:
        if self._buffer:
            return True
        return any(data for data in self._source)


class IterableReader(io.RawIOBase):
    """A read-only file over an iterator of byte strings (boto3's upload_fileobj reads files)."""

    def __init__(self, source: Iterable[bytes]) -> None:
        self._source = iter(source)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            data = next(self._source, None)
            if data is None:
                return 0
            self._buffer = data
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count
