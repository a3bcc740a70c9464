"""HAProxy's access log lines, read from a unix datagram socket into latency figures."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from conveyor.observe.metrics.access_log import (
    AccessRecord,
    EntryLabels,
    LatencyFeed,
    parse,
)


@pytest.mark.parametrize(
    ("line", "record"),
    [
        ("fe_web be_web web-1-1 200 12", AccessRecord("fe_web", "be_web", "web-1-1", 200, 0.012)),
        (
            "in_db_8008 be_db_8008 <NOSRV> 503 0",
            AccessRecord("in_db_8008", "be_db_8008", "<NOSRV>", 503, 0.0),
        ),
        ("fe_web be_web web-1-1 -1 -1", None),  # aborted before it was timed
        ("fe_web be_web 200 12", None),
        ("garbage", None),
    ],
)
def test_lines(line: str, record: AccessRecord | None) -> None:
    assert parse(line) == record


def test_each_frontend_is_counted_under_its_service_and_entry(tmp_path: Path) -> None:
    seen: list[tuple[EntryLabels, float]] = []
    done = threading.Event()

    def observe(entry: EntryLabels, seconds: float) -> None:
        seen.append((entry, seconds))
        if len(seen) == 2:
            done.set()

    feed = LatencyFeed(observe)
    path = tmp_path / "log.sock"
    web = EntryLabels("shop", "prod", "web", "external")
    feed.watch(path, {"fe_web": web, "in_web": web.__class__("shop", "prod", "web", "internal")})
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as haproxy:
            for line in (
                b"fe_web be_web web-1 200 5\n",
                b"fe_other be_x s 200 1\n",
                b"in_web be_web web-2 501 40\n",
            ):
                haproxy.sendto(line, str(path))
        assert done.wait(5)
    finally:
        feed.close()

    assert [(e.edge, s) for e, s in seen] == [("external", 0.005), ("internal", 0.04)]
    assert not path.exists()  # closed: the socket is gone
