"""The log collector against the real Docker Engine: a container writing JSON, logfmt, plain
lines and a traceback is searchable with its labels; a restart of the collector mid-stream,
and one of dockerd (a private one, started here), lose no line and repeat none; a removed
replica's lines stay searchable.

The tests run in file order against one container (module fixture)."""

from __future__ import annotations

import collections
import json
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.model.logs import LogQuery, LogRecord
from conveyor.observe.logs.collect import Collector, CollectorOptions
from conveyor.observe.logs.store import LogStore
from conveyor.runtime.docker_logs import DockerLogs

PHASE1 = 20_000  # numbered lines written at once
PHASE2 = 5_000  # numbered lines written once the test says go
OPTS = CollectorOptions(discover_interval=0.2, idle_flush=0.2, recheck=1.0, suspect_for=30.0)

# Writes the kinds of lines apps write, then numbered lines in two phases: the second waits
# for /ctl/go, the last line for /ctl/end, so the test decides what happens in between.
SCRIPT = r"""
import json, pathlib, sys, time
n1, n2 = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({"level": "error", "msg": "payment failed", "order": "o-17"}), flush=True)
print('level=warn msg="slow query" ms=812', file=sys.stderr, flush=True)
print("plain words here", flush=True)
try:
    1 / 0
except ZeroDivisionError:
    import traceback
    traceback.print_exc()
sys.stderr.flush()
for i in range(n1):
    print(f"seq {i}")
sys.stdout.flush()
while not pathlib.Path("/ctl/go").exists():
    time.sleep(0.02)
for i in range(n1, n1 + n2):
    print(f"seq {i}")
sys.stdout.flush()
while not pathlib.Path("/ctl/end").exists():
    time.sleep(0.02)
print("done", flush=True)
"""


def wait_until(pred: Callable[[], object], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def docker(*args: str, host: str | None = None) -> str:
    cmd = ["docker", *(["-H", host] if host else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


@dataclass
class World:
    project: str
    store: Path
    ctl: Path
    container: str
    image: str

    def collector(self, logs: DockerLogs | None = None) -> Collector:
        return Collector(self.project, "test", self.store, logs or DockerLogs(), options=OPTS)

    def records(self, **query: object) -> list[LogRecord]:
        s = LogStore.open(self.store, create=False)
        try:
            return list(reversed(s.search(LogQuery(limit=100_000, **query))))  # type: ignore[arg-type]
        finally:
            s.close()


def run_writer(project: str, image: str, ctl: Path, host: str | None = None) -> str:
    return docker(
        "run", "-d", "--network", "none",
        "--label", f"io.conveyor.project={project}",
        "--label", "io.conveyor.service=web",
        "--label", "io.conveyor.replica=web-1",
        "--label", "io.conveyor.release=3",
        "-v", f"{ctl}:/ctl",
        image, "python3", "-c", SCRIPT, str(PHASE1), str(PHASE2),
        host=host,
    ).strip()  # fmt: skip


@pytest.fixture(scope="module")
def world(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("logs")
    ctl = root / "ctl"
    ctl.mkdir()
    project = f"logtest{uuid.uuid4().hex[:8]}"
    cid = run_writer(project, base_image, ctl)
    yield World(project, root / "state" / "logs.db", ctl, cid, base_image)
    subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def sequence(records: list[LogRecord]) -> list[int]:
    return [int(r.message.split()[1]) for r in records if r.message.startswith("seq ")]


def test_each_kind_of_line_is_searchable_with_its_labels(world: World) -> None:
    c = world.collector()
    c.start()
    try:
        wait_until(lambda: world.records(text="ZeroDivisionError"), "the traceback")
        (payment,) = world.records(text="payment")
        assert (payment.level, payment.fields) == ("error", {"order": "o-17"})
        labels = payment.labels
        assert (labels.project, labels.environment, labels.service, labels.replica) == (
            world.project, "test", "web", "web-1",
        )  # fmt: skip
        assert (labels.release, labels.container, labels.stream) == (3, world.container, "stdout")
        (slow,) = world.records(text="slow", streams=("stderr",))
        assert (slow.message, slow.level, slow.fields) == ("slow query", "warning", {"ms": "812"})
        # warning and above on stderr: the logfmt line and the traceback
        assert [r.level for r in world.records(level="warning", streams=("stderr",))] == [
            "warning",
            "error",
        ]
        assert world.records(fields={"ms": "812"}) == [slow]
        (tb,) = world.records(text="ZeroDivisionError")
        assert tb.message.startswith("Traceback (most recent call last):")
        assert tb.message.endswith("ZeroDivisionError: division by zero")
        assert tb.level == "error"
        assert [r.message for r in world.records(text="plain words")] == ["plain words here"]
        # stopped while the numbered lines still come in (or just after): the next test
        # starts another collector from the cursors this one stored.
    finally:
        c.stop()


def test_a_collector_restarted_mid_stream_loses_and_repeats_nothing(world: World) -> None:
    (world.ctl / "go").touch()  # phase 2, written while no collector runs
    (world.ctl / "end").touch()
    docker("wait", world.container)
    c = world.collector()
    c.start()
    try:
        wait_until(lambda: world.records(text="done"), "the last line")
    finally:
        c.stop()
    seq = sequence(world.records(text="seq"))
    dupes = [n for n, k in collections.Counter(seq).items() if k > 1]
    assert dupes == []
    assert seq == list(range(PHASE1 + PHASE2))
    assert len(world.records(text="payment")) == 1


def test_a_removed_replica_stays_searchable(world: World) -> None:
    docker("rm", "-f", world.container)
    c = world.collector()
    c.start()
    try:
        newer = docker(
            "run", "-d", "--network", "none",
            "--label", f"io.conveyor.project={world.project}",
            "--label", "io.conveyor.service=web",
            "--label", "io.conveyor.replica=web-2",
            "--label", "io.conveyor.release=4",
            world.image, "python3", "-c", "print('the next replica', flush=True)",
        ).strip()  # fmt: skip
        try:
            wait_until(lambda: world.records(text="next replica"), "the next replica's line")
        finally:
            subprocess.run(["docker", "rm", "-f", newer], capture_output=True, check=False)
    finally:
        c.stop()
    by_replica = collections.Counter(r.labels.replica for r in world.records(services=("web",)))
    assert by_replica["web-1"] == PHASE1 + PHASE2 + 5  # and its 4 first lines, and "done"
    assert by_replica["web-2"] == 1
    assert len(world.records(release=3, text="payment")) == 1


# A restart of the Docker Engine needs an engine of our own: the machine's must never stop.


@dataclass
class PrivateEngine:
    root: Path
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.root}/d.sock"

    def start(self) -> None:
        log = (self.root / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_until(self.answers, "the private dockerd to answer", timeout=60)
        except AssertionError:
            self.stop()
            raise AssertionError(f"the private dockerd did not start; see {self.root}") from None

    def answers(self) -> bool:
        cmd = ["docker", "-H", self.host, "info"]
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None


@pytest.fixture(scope="module")
def engine(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateEngine]:
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd not installed")
    root = Path(tmp_path_factory.mktemp("dk"))
    # Its own configuration: live-restore (containers outlive the engine), nothing else.
    (root / "daemon.json").write_text('{"live-restore": true}')
    argv = [
        "dockerd", "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
        "-H", f"unix://{root}/d.sock", "--pidfile", f"{root}/d.pid",
        "--bridge=none", "--iptables=false", "--ip-masq=false",
        "--config-file", f"{root}/daemon.json",
    ]  # fmt: skip
    e = PrivateEngine(root, argv)
    e.start()
    try:
        save = subprocess.Popen(["docker", "save", base_image], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "-H", e.host, "load"], stdin=save.stdout, capture_output=True, check=True
        )
        save.wait(timeout=120)
        yield e
    finally:
        if e.proc is None:
            e.start()  # to remove what runs in it
        ids = docker("ps", "-aq", host=e.host).split()
        if ids:
            subprocess.run(
                ["docker", "-H", e.host, "rm", "-f", *ids], capture_output=True, check=False
            )
        e.stop()
        # dockerd mounts its data root on itself and, with live-restore, leaves it mounted
        mounts = Path("/proc/mounts").read_text().split("\n")
        for mount in sorted((m.split()[1] for m in mounts if str(root) in m), reverse=True):
            subprocess.run(["umount", mount], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_a_dockerd_restart_mid_stream_loses_and_repeats_nothing(
    engine: PrivateEngine, base_image: str, tmp_path: Path
) -> None:
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    project = f"logrestart{uuid.uuid4().hex[:6]}"
    store = tmp_path / "state" / "logs.db"
    cid = run_writer(project, base_image, ctl, host=engine.host)
    c = Collector(project, None, store, DockerLogs(engine.host), options=OPTS)
    c.start()
    try:
        wait_until(lambda: c.stats.records > 100, "the first lines")
        engine.stop()  # live-restore: the container keeps running and writing
        (ctl / "go").touch()  # phase 2 is written while the engine is away ...
        engine.start()
        (ctl / "end").touch()  # ... and the last line once it is back
        docker("wait", cid, host=engine.host)

        def done() -> bool:
            s = LogStore.open(store, create=False)
            try:
                return bool(s.search(LogQuery(text="done")))
            finally:
                s.close()

        wait_until(done, "the last line after the restart")
    finally:
        c.stop()
    s = LogStore.open(store, create=False)
    try:
        seq = sequence(list(reversed(s.search(LogQuery(text="seq", limit=100_000)))))
    finally:
        s.close()
    assert [n for n, k in collections.Counter(seq).items() if k > 1] == []
    assert seq == list(range(PHASE1 + PHASE2))
    assert c.stats.errors >= 1  # it noticed the engine was away, and carried on
    assert json.loads(docker("inspect", cid, host=engine.host))[0]["State"]["ExitCode"] == 0
