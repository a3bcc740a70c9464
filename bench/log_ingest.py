"""Figures of the embedded log store and its collector (issue 10, "Logs" item 4).

    .venv/bin/python bench/log_ingest.py stages [--lines 200000]
    .venv/bin/python bench/log_ingest.py ingest [--lines 500000]
    .venv/bin/python bench/log_ingest.py e2e [--lines 300000]
    .venv/bin/python bench/log_ingest.py engine [--lines 300000]
    .venv/bin/python bench/log_ingest.py overhead [--rate 5000 --seconds 20]
    .venv/bin/python bench/log_ingest.py search [--lines 1000000] [--big]
    .venv/bin/python bench/log_ingest.py all

- stages: each stage of the ingest alone in one thread's CPU time (the engine's frames
  decoded; resumed, joined and parsed; stored), so the cost of a line can be split.
- ingest: lines in memory, as the Docker Engine hands them over (frames with nanosecond
  stamps; 60 % access-log plain lines, 25 % JSON, 15 % logfmt, a traceback now and then), fed
  to the collector (parse, join, label, store) while another thread searches the store ten
  times a second. Lines/s from the collector's input to the store. Target >= 100,000 lines/s.
- e2e: a chatty container on this machine's Docker Engine writes `--lines` numbered lines as
  fast as it can; the collector follows it. Lines/s from the container's start to the last
  line stored, and every line counted (none lost, none twice). Target >= 50,000 lines/s.
- engine: the ceiling of e2e here: the same container followed from its start by a reader
  that only decodes the engine's frames (no parsing, no store).
- overhead: a container writing `--rate` lines/s for `--seconds`; the collector's CPU (this
  process's CPU time over wall time) and RSS meanwhile.
- search: a store of `--lines` lines (10 services over 24 hours) written directly, then
  searches of a word + a service + a one-hour window: p50/p95 over 200 searches, before and
  after the segment's index is merged (FTS5 optimize). Target p95 <= 100 ms at 1,000,000;
  `--big`: 10,000,000 (not in CI: minutes and a few GiB of disk).

Figures go to stdout, one line each; docs/logs.md keeps those of this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from common import ROOT, rss_mb  # noqa: F401 — sys.path set up by common

from conveyor.errors import StoreError
from conveyor.model.logs import LogLabels, LogQuery
from conveyor.observe.logs.collect import Collector, CollectorOptions
from conveyor.observe.logs.cursor import Cursor
from conveyor.observe.logs.parse_worker import ParseWorker
from conveyor.observe.logs.retention import Retention
from conveyor.observe.logs.store import ROW_VALUES, FlatRows, LogStore, Row
from conveyor.observe.logs.streams import StreamState, add_rows
from conveyor.runtime.docker_logs import DockerLogs, FrameDecoder
from conveyor.runtime.log_protocol import STDERR, STDOUT, Frame
from conveyor.testing.logs import FakeContainerLogs

IMAGE = "python:3.11-slim-bookworm"
# fmt: off
WORDS = [
    "user", "order", "payment", "cart", "checkout", "catalog", "product", "stock", "price",
    "invoice", "shipping", "address", "session", "token", "login", "logout", "refresh",
    "cache", "miss", "hit", "database", "query", "slow", "timeout", "retry", "connection",
    "pool", "worker", "queue", "job", "scheduled", "started", "finished", "failed",
    "succeeded", "request", "response", "upstream", "downstream", "gateway", "service",
    "replica", "release", "deploy", "rollout", "health", "probe",
]
# fmt: on
SERVICES = ["web", "api", "worker", "catalog", "cart", "payment", "auth", "search", "mail", "cron"]
T0 = 1_800_000_000 * 10**9


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- ingest at the collector's input -------------------------------------------------------


def synthetic_frames(n: int, rng: random.Random) -> list[Frame]:
    frames: list[Frame] = []
    ts = T0
    i = 0
    while i < n:
        ts += 1000
        k = i % 20
        if i % 2000 == 1999:  # a traceback: 4 lines, one record
            for text in (
                "Traceback (most recent call last):",
                '  File "/app/handlers.py", line 41, in checkout',
                "    total = price / quantity",
                "ZeroDivisionError: division by zero",
            ):
                frames.append((STDERR, ts, text, True))
                ts += 1
            i += 4
            continue
        w = rng.choice(WORDS)
        if k < 12:
            text = f'127.0.0.1 - - "GET /api/{w}/{i} HTTP/1.1" 200 {rng.randint(90, 9000)} {rng.random():.4f}'
        elif k < 17:
            text = json.dumps(
                {
                    "level": "info",
                    "msg": f"{w} handled",
                    "order": f"o-{i}",
                    "ms": rng.randint(1, 900),
                }
            )
        else:
            text = f'level=warn msg="{w} slow" ms={rng.randint(100, 5000)} attempt=2'
        frames.append((STDOUT, ts, text, True))
        i += 1
    return frames[:n]


def cpu_split(collector: Collector, cpu: float, dt: float, lines: int) -> tuple[float, str]:
    """All the collector's CPU time (its process and its parse worker's), and it said: the
    share of a CPU each got, and the lines per CPU-second of each (what each would do with a
    CPU of its own)."""
    worker = collector.parse_worker.cpu_seconds() if collector.parse_worker else 0.0
    if collector.parse_worker is None:
        return cpu, f"parsing in the followers; CPU {cpu / dt:.0%} of one core"
    return cpu + worker, (
        f"parsing in a worker process; CPU {(cpu + worker) / dt:.0%} of one core: collector "
        f"process {cpu / dt:.0%} ({lines / cpu:,.0f} lines per its CPU-second), parse worker "
        f"{worker / dt:.0%} ({lines / max(worker, 1e-9):,.0f} lines per its CPU-second)"
    )


def bench_ingest(lines: int, containers: int = 4, worker: bool | None = None) -> None:
    rng = random.Random(7)
    engine = FakeContainerLogs(batch=5000)
    per = lines // containers
    for c in range(containers):
        cid = f"c{c}"
        labels = {
            "io.conveyor.project": "bench",
            "io.conveyor.service": SERVICES[c % len(SERVICES)],
            "io.conveyor.replica": f"{SERVICES[c % len(SERVICES)]}-1",
            "io.conveyor.release": "1",
        }
        engine.add(cid, labels, running=False)
        engine.write_frames(cid, synthetic_frames(per, rng))
    expected_records = sum(
        1 for c in range(containers) for f in engine.containers[f"c{c}"].frames
        if not f[2].startswith(("  File", "    total", "ZeroDivisionError"))
    )  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="logbench-"))
    path = tmp / "logs.db"
    searches: list[float] = []
    stop = threading.Event()

    def searcher() -> None:
        # another connection, as `conveyor logs` would be; ten searches a second
        while not stop.wait(0.1):
            try:
                s = LogStore.open(path, create=False)
            except StoreError:  # not made yet by the collector
                time.sleep(0.05)
                continue
            try:
                t = time.perf_counter()
                s.search(LogQuery(text=rng.choice(WORDS), services=("web",), limit=100))
                searches.append(time.perf_counter() - t)
            finally:
                s.close()

    opts = CollectorOptions(discover_interval=0.05, maintain_interval=3600, parse_worker=worker)
    collector = Collector("bench", None, path, engine, options=opts)
    search_thread = threading.Thread(target=searcher, daemon=True)
    search_thread.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    collector.start()
    ok = collector.wait_written(expected_records, 600)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    stop.set()
    search_thread.join()
    cpu, split = cpu_split(collector, cpu, dt, lines)
    collector.stop()
    print(
        f"ingest: {lines:,} lines ({expected_records:,} records) in {dt:.2f}s = "
        f"{lines / dt:,.0f} lines/s at the collector's input (parsed, joined, labelled, stored); "
        f"{split}; {lines / cpu:,.0f} lines per CPU-second (searches "
        f"included); {len(searches)} searches meanwhile, p95 "
        f"{pct(searches, 0.95) * 1000:.1f} ms; all written: {ok}"
    )
    shutil.rmtree(tmp, ignore_errors=True)


def bench_stages(lines: int) -> None:
    """Each stage of the ingest alone, in this thread's CPU time: where a line's cost goes."""
    rng = random.Random(7)
    frames = synthetic_frames(lines, rng)
    # the engine's wire form of the same lines, for the frame decoder
    stamp = "2026-12-06T16:57:35.{:09d}Z "
    wire = b"".join(
        struct.pack(">BxxxL", f[0], len(p)) + p
        for f in frames
        for p in [(stamp.format(f[1] % 10**9) + f[2] + "\n").encode()]
    )
    t = time.thread_time()
    decoder = FrameDecoder(tty=False)
    decoded = sum(
        len(decoder.feed(wire[i : i + 256 * 1024])) for i in range(0, len(wire), 256 * 1024)
    )
    decode = time.thread_time() - t
    tmp = Path(tempfile.mkdtemp(prefix="logbench-"))
    store = LogStore.open(tmp / "logs.db")
    ids = {
        n: store.source(LogLabels(project="bench", service="web", container="c", stream=st))
        for n, st in ((STDOUT, "stdout"), (STDERR, "stderr"))
    }
    tags = {source: store.tag(source) for source in ids.values()}
    t = time.thread_time()
    states = {n: StreamState(source, Cursor(), tags[source]) for n, source in ids.items()}
    rows: FlatRows = []
    for stream, ts, text, _complete in frames:
        s = states[stream]
        mark = s.resume.take(ts)
        groups = s.joiner.feed(ts, text, mark)
        if groups:
            add_rows(s.source, s.levels, groups, rows)
    parse = time.thread_time() - t
    # The same in the parse worker, in the batches the engine reading yields: the worker's
    # CPU time, and this side's (pickling frames, unpickling rows).
    worker = ParseWorker()
    sources = {n: (source, Cursor()) for n, source in ids.items()}
    remote = worker.streams(sources, tags)
    remote.feed(frames[:1])  # started (its start is not a line's cost)
    base = worker.cpu_seconds()
    t = time.thread_time()
    remote = worker.streams(sources, tags)
    for i in range(0, len(frames), 3000):
        remote.feed(frames[i : i + 3000])
    ipc_here = time.thread_time() - t
    in_worker = worker.cpu_seconds() - base
    worker.stop()
    count = len(rows) // ROW_VALUES
    step = 20_000 * ROW_VALUES
    try:
        t = time.thread_time()
        for i in range(0, len(rows), step):
            store.write_flat(rows[i : i + step], {ids[STDOUT]: Cursor(i + 1, 1)})
        write = time.thread_time() - t
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"stages (CPU time of one thread, {lines:,} lines): the engine's frames decoded "
        f"{decoded / decode:,.0f}/s; resumed, joined and parsed {lines / parse:,.0f} lines/s "
        f"(in the parse worker: {lines / in_worker:,.0f} lines per worker CPU-second, and "
        f"{lines / ipc_here:,.0f} per CPU-second on the collector's side of the pipe); "
        f"stored {count / write:,.0f} rows/s (FTS5, 20,000 a transaction); all three "
        f"{lines / (decode + parse + write):,.0f} lines per CPU-second"
    )


# --- end to end from a container ---------------------------------------------------------------

CHATTY = r"""
import sys, time
n = int(sys.argv[1]); rate = float(sys.argv[2])
w = sys.stdout.write
start = time.monotonic()
for i in range(n):
    w(f"seq {i} GET /api/cart/{i} 200 {i % 977} bytes\n")
    if rate and i % 100 == 99:
        sys.stdout.flush()
        ahead = (i + 1) / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
sys.stdout.flush()
print("done", flush=True)
"""


def run_chatty(project: str, lines: int, rate: float) -> str:
    out = subprocess.run(
        [
            "docker", "run", "-d", "--network", "none",
            "--label", f"io.conveyor.project={project}",
            "--label", "io.conveyor.service=chatty",
            "--label", "io.conveyor.replica=chatty-1",
            "--label", "io.conveyor.release=1",
            IMAGE, "python3", "-c", CHATTY, str(lines), str(rate),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def count_seq(path: Path) -> tuple[int, int]:
    """(lines stored, distinct numbered lines among them)."""
    s = LogStore.open(path, create=False)
    try:
        total = s.stats().lines
        found = s.search(LogQuery(text="seq", limit=total + 1))
        return total, len({int(r.message.split()[1]) for r in found})
    finally:
        s.close()


def bench_e2e(lines: int, worker: bool | None = None) -> None:
    project = f"logbench{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="logbench-"))
    path = tmp / "logs.db"
    opts = CollectorOptions(discover_interval=0.05, parse_worker=worker)
    collector = Collector(project, None, path, DockerLogs(), options=opts)
    collector.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    cid = run_chatty(project, lines, 0)
    started = time.perf_counter() - t0
    # When the collector had read every line from the engine (stats.lines counts entries
    # read), sampled every 10 ms, to tell the engine's time from the collector's.
    read_all: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            if collector.stats.lines >= lines + 1:
                read_all.append(time.perf_counter() - t0)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        ok = collector.wait_written(lines + 1, 300)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        done.set()
        watcher.join()
        _, split = cpu_split(collector, cpu, dt, lines)
        collector.stop()
        ran = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.StartedAt}} {{.State.FinishedAt}}", cid],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        total, distinct = count_seq(path)
        # The engine alone: the same lines read back through its logs API, not parsed.
        t = time.perf_counter()
        frames = sum(len(b) for b in DockerLogs().read_logs(cid, 0, False, False))
        engine_rate = frames / (time.perf_counter() - t)
        read = f"{read_all[0]:.2f}s" if read_all else "?"
        st = collector.stats  # to tell a lost line's story: followers started, engine errors
        story = f"followers {st.followed}, engine errors {st.errors} {st.last_error!r}"
        print(
            f"e2e: {lines:,} lines from a container in {dt:.2f}s = {lines / dt:,.0f} lines/s "
            f"(docker run to last line stored; docker run returned after {started:.2f}s, every "
            f"line read from the engine after {read}); stored {total - 1:,} numbered lines, "
            f"{distinct:,} distinct: {'none lost, none twice' if distinct == lines == total - 1 else 'MISMATCH'}; "
            f"{split}; the engine alone serves its logs API at "
            f"{engine_rate:,.0f} lines/s (re-reading the stopped container); container ran "
            f"{ran[0]} .. {ran[1]}; {story}; all written: {ok}"
        )
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def bench_engine(lines: int) -> None:
    """The ceiling of `e2e` on this machine: the same chatty container followed from its
    `docker run` by a reader that only decodes the engine's frames (no parsing, no store)."""
    project = f"logbench{uuid.uuid4().hex[:6]}"
    t0 = time.perf_counter()
    cid = run_chatty(project, lines, 0)
    started = time.perf_counter() - t0
    try:
        count = 0
        for batch in DockerLogs().read_logs(cid, 0, True, False):
            count += len(batch)
            if count >= lines + 1:
                break
        dt = time.perf_counter() - t0
        print(
            f"engine: {lines:,} lines from a container followed by a reader that only decodes "
            f"frames: {count:,} in {dt:.2f}s = {lines / dt:,.0f} lines/s (docker run to last "
            f"line read; docker run returned after {started:.2f}s)"
        )
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def bench_overhead(rate: int, seconds: int) -> None:
    project = f"logbench{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="logbench-"))
    path = tmp / "logs.db"
    collector = Collector(project, None, path, DockerLogs())
    rss0 = rss_mb(os.getpid())
    collector.start()
    lines = rate * seconds
    cid = run_chatty(project, lines, rate)
    try:
        collector.wait_written(rate, 60)  # warmed up
        cpu0, t0 = time.process_time(), time.perf_counter()
        peak = rss_mb(os.getpid())
        while not collector.wait_written(lines + 1, 1.0):
            peak = max(peak, rss_mb(os.getpid()))
        dt = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        print(
            f"overhead: a container writing {rate:,} lines/s for {seconds}s: collector CPU "
            f"{cpu / dt:.1%} of one core, RSS {peak:.0f} MiB (this process; {rss0:.0f} MiB "
            f"before the collector started)"
        )
    finally:
        collector.stop()
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


# --- search latency ----------------------------------------------------------------------------


def build_store(path: Path, lines: int, rng: random.Random) -> tuple[float, int]:
    store = LogStore.open(path, Retention(max_bytes=1 << 40, max_age=3650 * 86400.0))
    sources = [
        store.source(
            LogLabels(
                project="bench",
                service=s,
                replica=f"{s}-{r}",
                release=1,
                container=f"{s}{r}",
                stream="stdout",
            )
        )
        for s in SERVICES
        for r in (1, 2)
    ]
    span = 24 * 3600 * 10**9
    t0 = time.perf_counter()
    batch: list[Row] = []
    for i in range(lines):
        ts = T0 + span * i // lines
        words = " ".join(rng.choice(WORDS) for _ in range(5))
        batch.append((sources[i % len(sources)], ts, 2 if i % 10 else 4, f"{words} id={i}", None))
        if len(batch) == 20_000:
            store.write(batch)
            batch = []
            store.maintain(time.time(), optimize=False)
    if batch:
        store.write(batch)
    dt = time.perf_counter() - t0
    size = store.used_bytes()
    store.close()
    return lines / dt, size


def searches(path: Path, rng: random.Random, n: int = 200) -> list[float]:
    store = LogStore.open(path, create=False)
    out: list[float] = []
    try:
        span = 24 * 3600
        for _ in range(n):
            start = T0 / 1e9 + rng.uniform(0, span - 3600)
            q = LogQuery(
                text=rng.choice(WORDS),
                services=(rng.choice(SERVICES),),
                since=start,
                until=start + 3600,
                limit=100,
            )
            t = time.perf_counter()
            store.search(q)
            out.append(time.perf_counter() - t)
    finally:
        store.close()
    return out


def bench_search(lines: int) -> None:
    rng = random.Random(11)
    tmp = Path(tempfile.mkdtemp(prefix="logbench-"))
    path = tmp / "logs.db"
    try:
        rate, size = build_store(path, lines, rng)
        before = searches(path, rng)
        store = LogStore.open(path, create=False)
        t = time.perf_counter()
        with store._lock:  # every segment's index merged, as sealing does in the background
            for seg in store.segments():
                store._conn.execute(f"INSERT INTO seg{seg.n} (seg{seg.n}) VALUES ('optimize')")
        merge = time.perf_counter() - t
        store.close()
        after = searches(path, rng)
        print(
            f"search: {lines:,} lines ({size / 2**20:,.0f} MiB, written at {rate:,.0f} rows/s "
            f"without parsing), word + service + 1 h window, limit 100: p50 "
            f"{pct(before, 0.5) * 1000:.1f} ms, p95 {pct(before, 0.95) * 1000:.1f} ms; after "
            f"merging the index ({merge:.1f}s): p50 {pct(after, 0.5) * 1000:.1f} ms, p95 "
            f"{pct(after, 0.95) * 1000:.1f} ms"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "what", choices=["stages", "ingest", "e2e", "engine", "overhead", "search", "all"]
    )
    ap.add_argument("--lines", type=int, default=0)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--big", action="store_true", help="search over 10,000,000 lines")
    ap.add_argument(
        "--parse",
        choices=["auto", "worker", "in-process"],
        default="auto",
        help="where the collector parses (auto: a worker process when there are 2+ CPUs)",
    )
    args = ap.parse_args()
    worker = {"auto": None, "worker": True, "in-process": False}[args.parse]
    # Figures from a busy machine mean little: say how busy it was.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)")
    if args.what in ("stages", "all"):
        bench_stages(args.lines or 200_000)
    if args.what in ("ingest", "all"):
        bench_ingest(args.lines or 500_000, worker=worker)
    if args.what in ("e2e", "all"):
        bench_e2e(args.lines or 300_000, worker=worker)
    if args.what in ("engine", "all"):
        bench_engine(args.lines or 300_000)
    if args.what in ("overhead", "all"):
        bench_overhead(args.rate, args.seconds)
    if args.what in ("search", "all"):
        bench_search(10_000_000 if args.big else (args.lines or 1_000_000))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
