"""The on-disk buffer: what is appended is read back in order until acknowledged, survives a
reopen (a restart), a torn append is cut off, the cap drops the oldest records and says how
many, and one process at a time holds it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.errors import ShipError
from conveyor.observe.logs.ship.buffer import DiskBuffer
from tests.unit.observe.ship_records import record

MB = 1024 * 1024


def messages(buffer: DiskBuffer, limit: int = 10_000) -> list[str]:
    batch, lost = buffer.read(limit, 64 * MB)
    assert lost == []
    return [] if batch is None else [r.message for r in batch.records]


def test_read_in_order_until_acknowledged(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "es", cap=MB)
    assert buffer.read(10, MB) == (None, [])
    assert buffer.append([record(1), record(2)]) == []
    buffer.append([record(3)])
    assert buffer.pending()[0] == 3

    first, _ = buffer.read(2, MB)  # whole frames: the first frame holds two records
    assert first is not None and [r.message for r in first.records] == ["line 1", "line 2"]
    assert messages(buffer) == ["line 1", "line 2", "line 3"]  # nothing acknowledged yet
    buffer.ack(first.end)
    assert buffer.pending()[0] == 1
    assert messages(buffer) == ["line 3"]
    buffer.ack(first.start)  # an older mark changes nothing
    assert messages(buffer) == ["line 3"]
    # Records come back as they went in, labels and fields included.
    buffer.append([record(4, fields={"k": "v"}, level=None)])
    batch, _ = buffer.read(10, MB)
    assert batch is not None and batch.records[-1] == record(4, fields={"k": "v"}, level=None)


def test_a_reopened_buffer_resends_what_was_not_acknowledged(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "es", cap=MB)
    buffer.append([record(1)])
    buffer.append([record(2)])
    first, _ = buffer.read(1, MB)
    assert first is not None
    buffer.ack(first.end)
    buffer.append([record(3)])
    # No close: a crash leaves the files as they are.
    os.close(buffer._lock_fd)  # the lock dies with the process

    again = DiskBuffer(tmp_path / "es", cap=MB)
    assert messages(again) == ["line 2", "line 3"]
    assert again.pending()[0] == 2


def test_a_torn_append_is_cut_off(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "es", cap=MB)
    buffer.append([record(1)])
    buffer.close()
    (segment,) = sorted((tmp_path / "es").glob("*.seg"))
    whole = segment.stat().st_size
    with segment.open("ab") as f:
        f.write(b"CVLB\x00\x10\x00\x00garbage")  # a frame whose append never finished

    again = DiskBuffer(tmp_path / "es", cap=MB)
    assert segment.stat().st_size == whole
    assert messages(again) == ["line 1"]
    again.append([record(2)])
    assert messages(again) == ["line 1", "line 2"]
    assert again.recovered.bytes == 0  # never accepted: nothing lost


def test_a_damaged_frame_is_skipped_and_counted(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "es", cap=MB)
    buffer.append([record(1), record(2)])
    buffer.append([record(3)])
    (segment,) = sorted((tmp_path / "es").glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[20] ^= 0xFF  # inside the first frame's payload
    segment.write_bytes(bytes(data))

    batch, lost = buffer.read(10, MB)
    assert [d.records for d in lost] == [2]
    assert batch is not None and [r.message for r in batch.records] == ["line 3"]


CAP = 200_000  # small, so that a few hundred appends (each fsync'd) pass it
SEGMENT = 20_000


def fill(buffer: DiskBuffer, start: int, count: int) -> list[int]:
    """Append records start.. in batches of 5 (about 500 bytes each); what the cap dropped."""
    dropped = []
    for n in range(start, start + count, 5):
        batch = [record(i, message=f"{i} " + "x" * 400) for i in range(n, n + 5)]
        dropped += [d.records for d in buffer.append(batch)]
    return dropped


def test_the_cap_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "es", cap=CAP, segment_size=SEGMENT)
    dropped = fill(buffer, 0, 1500)  # about 3.5 times the cap
    records, size = buffer.pending()
    assert dropped and sum(dropped) + records == 1500
    assert size <= CAP and buffer.disk_bytes <= CAP
    batch, _ = buffer.read(100_000, 64 * MB)
    assert batch is not None
    kept = [int(r.message.split()[0]) for r in batch.records]
    assert kept == list(range(1500 - len(kept), 1500))  # the newest, in order
    more = buffer.append([record(1)] * 400)
    assert more and all("reached its cap of 200000 bytes" in d.why for d in more)


def test_acknowledged_segments_are_deleted(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "es", cap=CAP, segment_size=SEGMENT)
    fill(buffer, 0, 200)
    assert len(list((tmp_path / "es").glob("*.seg"))) > 2
    while (batch := buffer.read(50, MB)[0]) is not None:
        buffer.ack(batch.end)
    assert buffer.pending() == (0, 0)
    buffer.append([record(1)])  # the written segment is fully acknowledged: a new one starts
    assert len(list((tmp_path / "es").glob("*.seg"))) == 1


def test_a_batch_overtaken_by_the_cap_is_known(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "es", cap=CAP, segment_size=SEGMENT)
    fill(buffer, 0, 5)
    batch, _ = buffer.read(10, MB)
    assert batch is not None and not buffer.overtaken(batch.start)
    fill(buffer, 5, 600)
    assert buffer.overtaken(batch.start)
    buffer.ack(batch.end)  # a late acknowledgement of dropped records changes nothing
    after, _ = buffer.read(1, MB)
    assert after is not None and after.start > batch.end


def test_one_process_holds_a_buffer(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "es", cap=MB)
    with pytest.raises(ShipError, match="another process ships logs from"):
        DiskBuffer(tmp_path / "es", cap=MB)
    buffer.close()
    DiskBuffer(tmp_path / "es", cap=MB).close()
    assert (tmp_path / "es").stat().st_mode & 0o777 == 0o700
