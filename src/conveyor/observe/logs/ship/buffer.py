"""A destination's on-disk buffer: records are appended (and fsync'd) before a batch counts as
accepted; the sender reads them in order and moves the acknowledged mark past what the
destination took. What is not acknowledged when the process stops is read again at the next
start (at-least-once).

Layout of the directory (one per destination, 0700):

- `lock`: held (flock) by the one process shipping from this buffer.
- `<20 digits>.seg`: segments, appended to in order; the last one is written. A segment is a
  run of frames: a 16-byte header (magic `CVLB`, payload length, CRC-32 of the payload,
  record count) and the payload, the records as a JSON array. A crash in the middle of an
  append leaves a torn frame at the end of the last segment: it was never acknowledged to the
  caller, and opening the buffer cuts it off.
- `ack`: `<segment> <offset>`, the first byte not yet acknowledged, replaced atomically. A
  segment wholly before it is deleted. An `ack` lost in a crash only means records are sent
  again, never that one is skipped.

The size cap counts the segments' bytes on disk. An append that would pass it drops the oldest
segments first, acknowledged or not: the records lost are returned to the caller, which counts
and reports them (the shipper: the `dropped` counter and a `logs.ship_dropped` event).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from conveyor.errors import ShipError
from conveyor.model.logs import LogRecord
from conveyor.store.database import private_dir

MAGIC = b"CVLB"
HEADER = struct.Struct("<4sIII")  # magic, payload length, CRC-32, records
SEGMENT_SUFFIX = ".seg"
MIN_SEGMENT = 64 * 1024
MAX_SEGMENT = 64 * 1024 * 1024
_RECORDS = TypeAdapter(list[LogRecord])


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


@dataclass
class Batch:
    records: list[LogRecord]
    start: Position
    end: Position  # acknowledge this once every record is delivered or refused


@dataclass(frozen=True)
class Dropped:
    """Records the buffer gave up: to make room under the cap, or unreadable on disk."""

    records: int = 0
    bytes: int = 0
    why: str = ""


@dataclass
class _Segment:
    number: int
    size: int = 0  # bytes of whole frames
    records: int = 0
    frames: list[tuple[int, int]] = field(default_factory=list)  # (end offset, records so far)


class DiskBuffer:
    """Thread-safe: one thread appends (the collector's), one reads and acknowledges (the
    sender); `lock` guards the bookkeeping, file writes happen under it too (an append is a
    few hundred microseconds plus its fsync)."""

    def __init__(self, directory: Path, cap: int, segment_size: int | None = None) -> None:
        self.directory = private_dir(directory)
        self.cap = cap
        self.segment_size = segment_size or min(MAX_SEGMENT, max(MIN_SEGMENT, cap // 8))
        self.lock = threading.Lock()
        self._lock_fd = _take_lock(self.directory / "lock")
        self._segments: list[_Segment] = []
        self._acked = Position(0, 0)
        self._write_fd: int | None = None
        self._closed = False
        self.recovered = Dropped()  # what opening found unreadable (a corrupt frame)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # --- the writer ------------------------------------------------------------------------

    def append(self, records: Sequence[LogRecord]) -> list[Dropped]:
        """Write `records` durably (fsync'd when this returns). Returns what the cap dropped
        to make room (oldest first), empty when nothing was."""
        if not records:
            return []
        frames = list(_frames(records, max(1, self.segment_size // 2)))
        dropped: list[Dropped] = []
        with self.lock:
            self._check_open()
            for payload, count in frames:
                data = HEADER.pack(MAGIC, len(payload), zlib.crc32(payload), count) + payload
                if len(data) > self.cap:
                    why = f"a batch of {len(data)} bytes does not fit a buffer of {self.cap}"
                    dropped.append(Dropped(count, len(data), why))
                    continue
                self._make_room(len(data), dropped)
                self._write(data, count)
        return dropped

    def _make_room(self, size: int, dropped: list[Dropped]) -> None:
        last = self._segments[-1]
        if (self._fully_acked(last) and last.size > 0) or last.size + size > self.segment_size:
            self._rotate()
        while self.disk_bytes + size > self.cap:
            if len(self._segments) == 1:
                if self._segments[0].size == 0:
                    break  # nothing left to drop (a frame is never larger than the cap)
                self._rotate()  # the written segment becomes the oldest one: dropped next
                continue
            gone = self._drop_oldest()
            if gone.records:
                dropped.append(gone)

    def _write(self, data: bytes, count: int) -> None:
        segment = self._segments[-1]
        fd = self._write_fd
        assert fd is not None
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fdatasync(fd)
        segment.size += len(data)
        segment.records += count
        segment.frames.append((segment.size, segment.records))

    def _rotate(self) -> None:
        number = self._segments[-1].number + 1 if self._segments else 1
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        path = self._path(number)
        self._write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(self.directory)
        self._segments.append(_Segment(number))
        # A wholly acknowledged segment before it is of no use any more.
        while len(self._segments) > 1 and self._fully_acked(self._segments[0]):
            self._delete_first()

    def _drop_oldest(self) -> Dropped:
        first = self._segments[0]
        records = first.records - self._acked_records(first)
        size = first.size - (self._acked.offset if self._acked.segment == first.number else 0)
        self._delete_first()
        return Dropped(records, size, f"the buffer reached its cap of {self.cap} bytes")

    def _delete_first(self) -> None:
        first = self._segments.pop(0)
        self._path(first.number).unlink(missing_ok=True)
        nxt = self._segments[0].number
        if self._acked < Position(nxt, 0):
            self._acked = Position(nxt, 0)
            self._save_ack()

    # --- the reader ------------------------------------------------------------------------

    def read(self, max_records: int, max_bytes: int) -> tuple[Batch | None, list[Dropped]]:
        """The oldest unacknowledged records (whole frames, at least one, up to the limits),
        and what was found unreadable on the way (skipped, to be counted as lost)."""
        lost: list[Dropped] = []
        with self.lock:
            self._check_open()
            plan = self._frames_from(self._acked, max_records, max_bytes)
            start = self._acked
        records: list[LogRecord] = []
        end = start
        for segment, begin, stop, count in plan:
            try:
                records.extend(self._load(segment, begin, stop))
            except _Corrupt as exc:
                lost.append(Dropped(count, stop - begin, f"segment {segment}: {exc}"))
            except FileNotFoundError:
                break  # the cap dropped the segment meanwhile: the next read starts after it
            end = Position(segment, stop)
        if end == start:
            return None, lost
        return Batch(records, start, end), lost

    def _frames_from(
        self, pos: Position, max_records: int, max_bytes: int
    ) -> list[tuple[int, int, int, int]]:
        """(segment, start, end, records) of the frames to read next."""
        plan: list[tuple[int, int, int, int]] = []
        records = size = 0
        for segment in self._segments:
            if segment.number < pos.segment:
                continue
            begin = pos.offset if segment.number == pos.segment else 0
            start = before = 0
            for end, total in segment.frames:
                frame = (segment.number, start, end, total - before)
                start, before = end, total
                if end <= begin:
                    continue
                if plan and (records + frame[3] > max_records or size + end - frame[1] > max_bytes):
                    return plan
                plan.append(frame)
                records += frame[3]
                size += end - frame[1]
        return plan

    def _load(self, segment: int, begin: int, end: int) -> list[LogRecord]:
        with self._path(segment).open("rb") as f:
            f.seek(begin)
            data = f.read(end - begin)
        magic, length, crc, _count = HEADER.unpack_from(data)
        payload = data[HEADER.size :]
        if magic != MAGIC or length != len(payload) or zlib.crc32(payload) != crc:
            raise _Corrupt(f"the frame at byte {begin} fails its checksum")
        try:
            return _RECORDS.validate_json(payload)
        except ValidationError as exc:
            raise _Corrupt(f"the frame at byte {begin} does not hold records: {exc}") from None

    def ack(self, end: Position) -> None:
        """Everything before `end` is delivered (or refused for good). A mark behind the
        current one (the cap dropped past it meanwhile) changes nothing."""
        with self.lock:
            self._check_open()
            if end <= self._acked:
                return
            self._acked = end
            while len(self._segments) > 1 and self._fully_acked(self._segments[0]):
                self._delete_first()
            self._save_ack()

    def overtaken(self, start: Position) -> bool:
        """True when the cap dropped records at or after `start` (a batch being sent)."""
        with self.lock:
            first = self._segments[0].number if self._segments else 0
            return start.segment < first

    # --- figures ---------------------------------------------------------------------------

    @property
    def disk_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def pending(self) -> tuple[int, int]:
        """(records, bytes) not yet acknowledged."""
        with self.lock:
            if not self._segments:
                return 0, 0
            first = self._segments[0]
            records = sum(s.records for s in self._segments) - self._acked_records(first)
            offset = self._acked.offset if self._acked.segment == first.number else 0
            return records, self.disk_bytes - offset

    # --- opening and closing ---------------------------------------------------------------

    def close(self) -> None:
        with self.lock:
            if self._closed:
                return
            self._closed = True
            if self._write_fd is not None:
                os.close(self._write_fd)
                self._write_fd = None
            os.close(self._lock_fd)  # releases the flock

    def _open(self) -> None:
        numbers = sorted(
            int(p.name[: -len(SEGMENT_SUFFIX)])
            for p in self.directory.glob(f"*{SEGMENT_SUFFIX}")
            if p.name[: -len(SEGMENT_SUFFIX)].isdigit()
        )
        lost = Dropped()
        for number in numbers:
            segment, bad = self._scan(number, last=number == numbers[-1])
            self._segments.append(segment)
            if bad.records or bad.bytes:
                lost = Dropped(lost.records + bad.records, lost.bytes + bad.bytes, bad.why)
        self.recovered = lost
        self._acked = self._load_ack()
        if not self._segments:
            self._rotate()
        else:
            last = self._segments[-1]
            self._write_fd = os.open(self._path(last.number), os.O_WRONLY | os.O_APPEND)
        while len(self._segments) > 1 and self._fully_acked(self._segments[0]):
            self._delete_first()

    def _scan(self, number: int, last: bool) -> tuple[_Segment, Dropped]:
        """A segment's frames. A frame that does not check ends it: in the last segment that
        is a torn append (cut off: never accepted); earlier, a damaged file (its rest lost)."""
        path = self._path(number)
        data = path.read_bytes()
        segment = _Segment(number)
        offset = 0
        while offset + HEADER.size <= len(data):
            magic, length, crc, count = HEADER.unpack_from(data, offset)
            end = offset + HEADER.size + length
            if magic != MAGIC or end > len(data):
                break
            if zlib.crc32(data[offset + HEADER.size : end]) != crc:
                break
            segment.size = end
            segment.records += count
            segment.frames.append((end, segment.records))
            offset = end
        if segment.size == len(data):
            return segment, Dropped()
        if last:
            with path.open("r+b") as f:
                f.truncate(segment.size)
                os.fsync(f.fileno())
            return segment, Dropped()
        rest = len(data) - segment.size
        return segment, Dropped(0, rest, f"segment {number}: {rest} unreadable bytes at the end")

    def _load_ack(self) -> Position:
        if not self._segments:
            return Position(1, 0)  # nothing buffered: segment 1 is created next
        first = self._segments[0].number
        try:
            seg_text, off_text = (self.directory / "ack").read_text().split()
            pos = Position(int(seg_text), int(off_text))
        except (OSError, ValueError):
            return Position(first, 0)
        if pos.segment < first:
            return Position(first, 0)
        for segment in self._segments:
            if segment.number == pos.segment:
                # On a frame boundary, or back to the frame it falls in (sent again).
                ends = [0, *(end for end, _ in segment.frames)]
                return Position(pos.segment, max(e for e in ends if e <= pos.offset))
        later = [s.number for s in self._segments if s.number > pos.segment]
        return Position(later[0], 0) if later else Position(self._segments[-1].number, 0)

    def _save_ack(self) -> None:
        tmp = self.directory / "ack.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{self._acked.segment} {self._acked.offset}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        # No directory fsync: a rename lost in a crash only sends records again.
        os.replace(tmp, self.directory / "ack")

    # --- helpers ---------------------------------------------------------------------------

    def _fully_acked(self, segment: _Segment) -> bool:
        return self._acked >= Position(segment.number, segment.size)

    def _acked_records(self, segment: _Segment) -> int:
        if self._acked.segment != segment.number:
            return segment.records if self._acked.segment > segment.number else 0
        done = 0
        for end, total in segment.frames:
            if end <= self._acked.offset:
                done = total
        return done

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:020d}{SEGMENT_SUFFIX}"

    def _check_open(self) -> None:
        if self._closed:
            raise ShipError(f"the log buffer {self.directory} is closed")


class _Corrupt(Exception):
    pass


def _frames(records: Sequence[LogRecord], max_payload: int) -> Iterable[tuple[bytes, int]]:
    """The records as JSON-array payloads of about `max_payload` bytes at most (a single
    larger record is a frame of its own)."""
    payload = _RECORDS.dump_json(list(records))
    if len(payload) <= max_payload or len(records) == 1:
        yield payload, len(records)
        return
    half = len(records) // 2
    yield from _frames(records[:half], max_payload)
    yield from _frames(records[half:], max_payload)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ShipError(
            f"another process ships logs from {path.parent} (it holds {path.name})"
        ) from None
    return fd
