"""Decoding the logs API's body: chunked transfer, multiplexed frames, timestamps."""

from __future__ import annotations

import struct

import pytest

from conveyor.runtime.docker_logs import ChunkedBody, FrameDecoder, parse_timestamp, stamp_of

TS = "2026-12-06T13:58:50.326812957Z"
TS_NS = 1_796_565_530_326_812_957


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        (TS, TS_NS),
        ("2026-12-06T13:58:50.3268Z", TS_NS - 12957),  # trailing zeros dropped
        ("2026-12-06T13:58:50Z", TS_NS - 326812957),  # no fraction at all
        ("1970-01-01T00:00:01.000000001Z", 1_000_000_001),
    ],
)
def test_timestamps(text: str, ns: int) -> None:
    assert parse_timestamp(text) == ns


def test_frames_split_anywhere_come_out_whole() -> None:
    body = (
        frame(1, f"{TS} hello\n".encode())
        + frame(2, f"{TS} caf\u00e9 on stderr\n".encode())
        + frame(1, f"{TS} piece".encode())  # a split line's leading piece: no newline
        + frame(1, f"{TS} end\n".encode())
    )
    for cut in range(1, len(body)):
        d = FrameDecoder(tty=False)
        got = d.feed(body[:cut]) + d.feed(body[cut:])
        assert got == [
            (1, TS_NS, "hello", True),
            (2, TS_NS, "café on stderr", True),
            (1, TS_NS, "piece", False),
            (1, TS_NS, "end", True),
        ], cut


def test_a_tty_is_one_stream_of_lines() -> None:
    d = FrameDecoder(tty=True)
    got = d.feed(f"{TS} one\r\n{TS} tw".encode()) + d.feed(b"o\r\n" + f"{TS} last".encode())
    assert got + d.end() == [
        (1, TS_NS, "one", True),
        (1, TS_NS, "two", True),
        (1, TS_NS, "last", True),
    ]


def test_undecodable_bytes_are_replaced_not_fatal() -> None:
    d = FrameDecoder(tty=False)
    assert d.feed(frame(1, TS.encode() + b" \xff\xfe ok\n")) == [
        (1, TS_NS, "\ufffd\ufffd ok", True)
    ]


def test_chunked_transfer_decoding() -> None:
    payload = [b"a" * 5, b"hello world", b"x" * 300]
    wire = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in payload) + b"0\r\n\r\n"
    for size in (1, 2, 3, 7, 64, 10_000):
        pieces = [wire[i : i + size] for i in range(0, len(wire), size)]
        feed = iter(pieces)
        body = ChunkedBody(lambda _n, feed=feed: next(feed, b""))
        out = b""
        while True:
            data = body.read()
            if not data:
                break
            out += data
        assert out == b"".join(payload), size
        assert body.done


@pytest.mark.parametrize(
    "text",
    [
        TS,
        "2026-12-06T13:58:50.3268Z",
        "2026-12-06T13:58:50Z",
        "1970-01-01T00:00:01.000000001Z",
        "2026-12-06T13:58:50.1Z",
        "2026-12-06T13:58:50.1234567891Z",  # more digits than nanoseconds: the generic parse
        "2026-12-06T13:58:50.326812957+01:00",  # not UTC: the generic parse
    ],
)
def test_the_fast_stamp_agrees_with_the_generic_parse(text: str) -> None:
    assert stamp_of(text.encode()) == parse_timestamp(text)


def test_a_chunked_body_tells_its_end_from_a_cut() -> None:
    wire = b"5\r\nhello\r\n"
    for tail, ended in ((b"0\r\n\r\n", True), (b"", False), (b"3\r\nab", False)):
        feed = iter([wire + tail])
        body = ChunkedBody(lambda _n, feed=feed: next(feed, b""))
        while body.read():
            pass
        assert body.ended is ended, tail
