"""Crash safety at every point of a rollout, on the real dockerd and HAProxy.

A `conveyor` command is started as a process of its own, SIGKILLed once its rollout has
journaled step k, and the next command must repair what it left: adopt or remove containers by
label, put HAProxy's servers back to exactly the running replicas, and finish (or roll back)
the interrupted rollout, which history keeps as `interrupted` beside the `recover` that
finished it.

Two kills per step k, both by failpoints in the command itself (see FAILPOINT), so where the
kill lands never depends on timing:

- `begun`: right after step k is journaled `started`, before its action has had an effect (no
  container created yet, no HAProxy command sent);
- `acted`: step k's action has completed but its `done` is not yet written.

Crashes *inside* an action (between the HAProxy commands of one `route`, between creating a
container and starting it…) are reached with failpoints too.

No agent runs (`up --no-agent`): the next *command* repairs, not the agent.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from conveyor.deploy.project import ProjectPaths
from conveyor.router.haproxy import HAProxyRouter
from conveyor.testing.net import free_port
from tests.integration.deploy.crash_sample import sample

Phase = Literal["begun", "acted"]

IMAGE = "python:3.11-slim-bookworm"
STACK = """\
services:
  web:
    image: {image}
    network_mode: host
    command: ["sh", "-c", "exec python3 -m http.server $$PORT --bind 127.0.0.1"]
    environment: {{V: "{version}"}}
    deploy:
      replicas: 2
      update_config: {{order: start-first, parallelism: 1}}
    stop_grace_period: 1s
    x-conveyor: {{probe: {probe}, public_port: {web_port}}}
  api:
    image: {image}
    network_mode: host
    command: ["sh", "-c", "exec python3 -m http.server $$PORT --bind 127.0.0.1"]
    depends_on: [web]
    stop_grace_period: 1s
    x-conveyor: {{probe: /, public_port: {api_port}}}
"""
GOOD_PROBE = "/"
BAD_PROBE = "{path: /nope, start_timeout: 2s}"
DESIRED = {"web": 2, "api": 1}

# What `conveyor plan` must say a change of web's environment takes (start-first,
# parallelism 1, two replicas): checked against `plan --json` before the first crash.
DEPLOY_STEPS = ("start", "await", "route", "drain", "unroute", "stop") * 2


# Runs the real `conveyor` command with one failpoint: the process SIGKILLs itself
# - "journal" KIND:K:PHASE: at step K (1-based) of its first KIND rollout, right after the step
#   is journaled `started` (PHASE begun) or once its action is done, before `done` is written
#   (PHASE acted);
# - "haproxy" PATTERN: right after HAProxy answers a runtime command matching PATTERN;
# - "create" PATTERN: after the Docker Engine creates a container whose name matches it;
# - "address" -: once a service address container is created, before it is started;
# - "stop": once a stopped container has exited, before it is removed.
FAILPOINT = """
import os, re, signal, sys
from conveyor.cli.main import main
from conveyor.router.haproxy import HAProxyRouter
from conveyor.runtime.docker_engine import DockerEngine
from conveyor.store.rollouts import JournalRepository, RolloutRepository

where, arg = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
sys.argv[0] = "conveyor"

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if where == "journal":
    kind, k, phase = arg.split(":")
    seq_k, first = int(k) - 1, []
    start = RolloutRepository.start
    def _start(self, kind_, *a, **kw):
        rid = start(self, kind_, *a, **kw)
        if kind_ == kind and not first:
            first.append(rid)
        return rid
    RolloutRepository.start = _start
    begin, end = JournalRepository.begin, JournalRepository.end
    def _begin(self, rid, seq, step):
        begin(self, rid, seq, step)
        if phase == "begun" and first == [rid] and seq == seq_k:
            die()
    def _end(self, rid, seq, status, detail=None):
        if phase == "acted" and first == [rid] and seq == seq_k and status == "done":
            die()
        end(self, rid, seq, status, detail)
    JournalRepository.begin, JournalRepository.end = _begin, _end
elif where == "haproxy":
    pattern = re.compile(arg)
    send = HAProxyRouter._send
    def _send(self, path, command, timeout=None):
        reply = send(self, path, command, timeout)
        if pattern.search(command):
            die()
        return reply
    HAProxyRouter._send = _send
elif where == "create":
    pattern = re.compile(arg)
    create = DockerEngine._create
    def _create(self, req, name):
        cid = create(self, req, name)
        if pattern.search(name):
            die()
        return cid
    DockerEngine._create = _create
elif where == "address":
    import docker.api.client
    start = docker.api.client.APIClient.start
    def _start(self, container, *a, **kw):
        if self.inspect_container(container)["Name"].endswith("-address"):
            die()  # a service address created, not started
        return start(self, container, *a, **kw)
    docker.api.client.APIClient.start = _start
else:
    stop = DockerEngine.stop
    def _stop(self, container_id, sig, grace):
        code = stop(self, container_id, sig, grace)
        die()
        return code
    DockerEngine.stop = _stop
main()
"""


@dataclass
class Crash:
    """A command killed during its rollout."""

    rollout: int
    journal: list[tuple[int, str, str]]  # (seq, step description, status) at the kill
    output: str

    def where(self) -> str:
        return "; ".join(f"{seq + 1}:{what}={status}" for seq, what, status in self.journal)


class Stack:
    template = STACK
    addresses = 0  # service address containers the converged stack has (project networks)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"crash-{uuid.uuid4().hex[:6]}"
        self.web_port = free_port()
        self.api_port = free_port()
        self.version = "0"
        self.dirty = False  # a test failed part-way: the next one re-converges first

    @property
    def compose(self) -> Path:
        return self.root / "compose.yaml"

    @property
    def paths(self) -> ProjectPaths:
        return ProjectPaths(self.compose, self.name)

    @property
    def state_db(self) -> Path:
        return self.paths.state_dir / "state.db"

    def write(self, version: str, probe: str = GOOD_PROBE) -> None:
        self.version = version
        self.compose.write_text(
            self.template.format(
                image=IMAGE,
                version=version,
                probe=probe,
                web_port=self.web_port,
                api_port=self.api_port,
            )
        )

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "conveyor", "-f", str(self.compose), "-p", self.name, *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            self.cmd(*args), capture_output=True, text=True, timeout=300, check=False
        )
        if check and p.returncode != 0:
            raise AssertionError(f"conveyor {' '.join(args)} -> {p.returncode}\n{p.stderr}")
        return p

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def containers(self, label: str | None = None) -> list[str]:
        """The project's containers (with `label`: those carrying it)."""
        filters = ["--filter", f"label=io.conveyor.project={self.name}"]
        if label is not None:
            filters += ["--filter", f"label={label}"]
        out = subprocess.run(
            ["docker", "ps", "-aq", "--no-trunc", *filters],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.split()

    def last_rollout(self, db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM rollouts").fetchone()[0])

    def crash_inside(self, args: tuple[str, ...], where: str, pattern: str) -> Crash:
        """Run `conveyor ARGS` with a failpoint (see FAILPOINT) that kills it."""
        with sqlite3.connect(self.state_db) as db:
            before = self.last_rollout(db)
        cmd = [sys.executable, "-c", FAILPOINT, where, pattern, *self.cmd(*args)[3:]]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert p.returncode == -signal.SIGKILL, f"the failpoint was not reached:\n{p.stderr}"
        with sqlite3.connect(self.state_db) as db:
            rid = int(db.execute("SELECT MAX(id) FROM rollouts").fetchone()[0])
            assert rid > before, "the command was killed before its rollout began"
            rows = db.execute(
                "SELECT seq, step, status FROM journal WHERE rollout_id = ? ORDER BY seq", (rid,)
            ).fetchall()
        journal = [(int(seq), _describe(json.loads(step)), str(st)) for seq, step, st in rows]
        return Crash(rollout=rid, journal=journal, output=p.stderr)

    def crash(self, args: tuple[str, ...], kind: str, k: int, phase: Phase) -> Crash:
        """Run `conveyor ARGS`, SIGKILLed at step k (1-based) of its first `kind` rollout."""
        crash = self.crash_inside(args, "journal", f"{kind}:{k}:{phase}")
        assert len(crash.journal) == k, crash.where()
        assert crash.journal[-1][2] == "started", crash.where()  # never journaled done
        return crash

    # what a repaired project looks like ---------------------------------------------------------

    def assert_repaired(
        self, crash: Crash, version: str, recovered: str = "succeeded"
    ) -> dict[str, Any]:
        """The project runs `version` as if never interrupted, and history tells the crash."""
        # the two reports are independent: read them side by side
        procs = [
            subprocess.Popen(self.cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for args in (("status", "--json"), ("history", "--json", "-n", "100"))
        ]
        st: dict[str, Any]
        hist: dict[str, Any]
        st, hist = (json.loads(p.communicate(timeout=60)[0]) for p in procs)
        self.assert_converged(st, version)
        self.assert_recovered(hist, crash, recovered)
        return st

    def assert_converged(self, st: dict[str, Any], version: str) -> None:
        """Exactly the desired replicas, all current, running and ready in HAProxy, which has
        no other server; no other container of the project; both frontends answer."""
        assert st["router"]["running"], st
        replicas: dict[tuple[str, str], dict[str, Any]] = {}
        for svc in st["services"]:
            reps = svc["replicas"]
            assert len(reps) == DESIRED[svc["name"]] == svc["desired_replicas"], svc
            for r in reps:
                assert (r["running"], r["current"], r["router"]) == (True, True, "ready"), svc
                replicas[(svc["name"], r["name"])] = r
        assert set(DESIRED) == {s["name"] for s in st["services"]}, st

        ids = self.containers("io.conveyor.replica")
        assert sorted(c[:12] for c in ids) == sorted(r["container"] for r in replicas.values()), (
            f"containers of the project {ids} are not exactly its replicas {replicas}"
        )
        assert len(self.containers()) == len(ids) + self.addresses, "stray containers"

        router = HAProxyRouter(self.paths.router_dir)
        want = {key: f"{r['address']}:{r['port']}" for key, r in replicas.items()}
        servers = {(s.backend, s.server): s for s in router.servers()}
        assert {key: str(s.endpoint) for key, s in servers.items()} == want, servers
        assert {s.admin_state for s in servers.values()} == {"ready"}, servers
        # what a reload or restart of HAProxy would load back
        record = json.loads(router.record_file.read_text())
        recorded = {
            (svc, e["name"]): f"{e['endpoint']['host']}:{e['endpoint']['port']}"
            for svc, es in record.items()
            for e in es
        }
        assert recorded == want, f"servers.json {record} is not the running replicas {want}"
        deadline = time.monotonic() + 10
        while {s.operational for s in router.servers()} != {"up"}:
            assert time.monotonic() < deadline, f"HAProxy's checks do not pass: {router.servers()}"
            time.sleep(0.05)

        inspected = subprocess.run(
            ["docker", "inspect", "--format", "{{json .Config.Env}}", *ids],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        envs = [json.loads(line) for line in inspected.splitlines() if line.strip()]
        versions = sorted(v for env in envs for v in env if v.startswith("V="))
        assert versions == [f"V={version}"] * DESIRED["web"], versions

        for port in (self.web_port, self.api_port):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                assert resp.status == 200

    def assert_recovered(self, hist: dict[str, Any], crash: Crash, recovered: str) -> None:
        """History keeps the killed rollout (`interrupted`, its journal intact) and the
        `recover` rollout that finished it; nothing is left `running`."""
        rollouts = {r["id"]: r for r in hist["rollouts"]}
        assert rollouts[crash.rollout]["status"] == "interrupted", rollouts[crash.rollout]
        finishing = f"finish interrupted rollout {crash.rollout}"
        recovers = [
            r for r in hist["rollouts"] if r["kind"] == "recover" and r["reason"] == finishing
        ]
        assert [r["status"] for r in recovers] == [recovered], hist["rollouts"][:5]
        assert not [r for r in hist["rollouts"] if r["status"] == "running"], hist["rollouts"]
        with sqlite3.connect(self.state_db) as db:
            kept = db.execute(
                "SELECT COUNT(*) FROM journal WHERE rollout_id = ?", (crash.rollout,)
            ).fetchone()[0]
        assert kept == len(crash.journal), "the killed rollout's journal lost rows"


def _describe(step: dict[str, Any]) -> str:
    return f"{step['kind']} {step.get('replica') or step.get('service') or ''}".strip()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("crash"))
    s.write("0")
    try:
        s.run("up", "--no-agent")
        s.write("plan")
        kinds = tuple(step["kind"] for step in s.json("plan")["steps"])
        assert kinds == DEPLOY_STEPS, f"the crash points assume this plan: {kinds}"
        s.write("0")  # the files describe what runs
        yield s
    finally:
        # No image was built (the stack runs the base image): containers and HAProxy remain.
        down = s.run("down", check=False)
        left = s.containers()
        if left:
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
        haproxy_left = HAProxyRouter(s.paths.router_dir).running()
        if not haproxy_left:
            shutil.rmtree(s.paths.run_dir, ignore_errors=True)
        assert down.returncode == 0, down.stderr
        assert not left, f"containers left after down: {left}"
        assert not haproxy_left, "HAProxy still runs after down"


@pytest.fixture
def fresh(stack: Stack) -> Iterator[Stack]:
    """The stack converged on its files before the test; marked dirty if the test fails."""
    if stack.dirty:
        stack.write(stack.version)
        stack.run("deploy", check=False)
    stack.dirty = True
    yield stack
    stack.dirty = False


def _crash_id(k: int, phase: Phase) -> str:
    replica = "new1" if k <= 3 else "old1" if k <= 6 else "new2" if k <= 9 else "old2"
    return f"{k:02d}-{DEPLOY_STEPS[k - 1]}-{replica}-{phase}"


CRASH_POINTS = [
    pytest.param(k, phase, id=_crash_id(k, phase))
    for k in range(1, len(DEPLOY_STEPS) + 1)
    for phase in ("begun", "acted")
]
# By default (crash_sample.py): every point of replacing the first replica (each kind of step,
# both phases), and two of the second replica's.
DEFAULT_CRASH_POINTS = [_crash_id(k, phase) for k in range(1, 7) for phase in ("begun", "acted")]


@pytest.mark.parametrize(
    ("k", "phase"), sample("deploy-step", CRASH_POINTS, DEFAULT_CRASH_POINTS, rotate=2)
)
def test_deploy_killed_at_step_is_repaired_by_the_next_deploy(
    fresh: Stack, k: int, phase: Phase
) -> None:
    version = f"{k}{phase}"
    fresh.write(version)
    crash = fresh.crash(("deploy",), "deploy", k, phase)

    again = fresh.run("deploy", check=False)
    assert again.returncode == 0, f"killed at {crash.where()}\n{again.stderr}"
    assert f"recovering interrupted rollout {crash.rollout}" in again.stderr, again.stderr
    fresh.assert_repaired(crash, version)


@pytest.mark.parametrize(
    ("where", "pattern"),
    sample(
        "deploy-inside",
        [
            pytest.param("create", r"-web-\d+-1$", id="start-new1-created-not-started"),
            pytest.param("haproxy", r"^add server be_web/", id="route-new1-added-in-maint"),
            pytest.param(
                "haproxy", r"^set server be_web/\S+ state ready", id="route-new1-unrecorded"
            ),
            pytest.param(
                "haproxy", r"^set server be_web/\S+ state maint", id="unroute-old1-in-maint"
            ),
            pytest.param(
                "haproxy", r"^set server be_web/\S+ state drain", id="drain-old1-unrecorded"
            ),
            pytest.param("haproxy", r"^del server be_web/", id="unroute-old1-deleted-recorded"),
            pytest.param("stop", "", id="stop-old1-exited-not-removed"),
        ],
        # a container created but never started; a server HAProxy holds in maintenance
        core=["start-new1-created-not-started", "route-new1-added-in-maint"],
        rotate=2,
    ),
)
def test_deploy_killed_inside_a_step_is_repaired_by_the_next_deploy(
    fresh: Stack, where: str, pattern: str
) -> None:
    version = f"inside-{uuid.uuid4().hex[:6]}"
    fresh.write(version)
    crash = fresh.crash_inside(("deploy",), where, pattern)

    again = fresh.run("deploy", check=False)
    assert again.returncode == 0, f"killed at {crash.where()}\n{again.stderr}"
    fresh.assert_repaired(crash, version)


def test_recovery_killed_in_turn_is_finished_by_the_next_command(fresh: Stack) -> None:
    fresh.write("twice")
    first = fresh.crash(("deploy",), "deploy", 3, "begun")
    second = fresh.crash(("deploy",), "recover", 2, "begun")

    again = fresh.run("deploy", check=False)
    assert again.returncode == 0, again.stderr
    fresh.assert_repaired(second, "twice")
    first_row = fresh.json("history")["rollouts"]
    assert [r["status"] for r in first_row if r["id"] == first.rollout] == ["interrupted"]


@pytest.mark.parametrize(
    ("k", "phase", "twice"),
    sample(
        "rollback",
        [
            # rollback_config defaults to parallelism 0: start both, await and route each, then
            # drain, unroute and stop each old replica
            pytest.param(1, "acted", False, id="01-start-new1-acted"),
            pytest.param(5, "begun", False, id="05-await-new2-begun"),
            pytest.param(8, "acted", False, id="08-unroute-old1-acted"),
            pytest.param(4, "begun", True, id="04-route-new1-begun-then-its-recovery-killed"),
        ],
        core=["04-route-new1-begun-then-its-recovery-killed"],
        rotate=1,
    ),
)
def test_rollback_killed_is_finished_by_running_rollback_again(
    fresh: Stack, k: int, phase: Phase, twice: bool
) -> None:
    back_to = fresh.version
    fresh.write(f"rollback-{k}-{phase}-{twice}")
    fresh.run("deploy")
    forward = fresh.json("status")["release"]
    crash = fresh.crash(("rollback",), "rollback", k, phase)
    if twice:
        crash = fresh.crash(("rollback",), "recover", 1, "begun")

    again = fresh.run("rollback", check=False)
    assert again.returncode == 0, f"killed at {crash.where()}\n{again.stderr}"
    # the interrupted rollback, finished: not a second one that goes forward again
    st = fresh.assert_repaired(crash, back_to)
    assert st["release"] < forward, st["release"]
    fresh.write(back_to)  # the files describe what runs again


@pytest.mark.parametrize(
    ("kind", "k", "phase", "recovered"),
    sample(
        "failing-deploy",
        [
            # the recovery retries the bad release, which fails its probe again and is rolled back
            pytest.param("deploy", 2, "begun", "rolled_back", id="awaiting-the-bad-replica"),
            pytest.param("rollback", 1, "begun", "succeeded", id="rollback-stopping-bad-replica"),
            pytest.param("rollback", 1, "acted", "succeeded", id="rollback-stopped-bad-replica"),
        ],
        core=["awaiting-the-bad-replica"],
        rotate=1,
    ),
)
def test_failing_deploy_killed_is_repaired_by_deploying_the_good_spec(
    fresh: Stack, kind: str, k: int, phase: Phase, recovered: str
) -> None:
    good = fresh.version
    fresh.write(f"bad-{kind}-{k}-{phase}", probe=BAD_PROBE)
    crash = fresh.crash(("deploy",), kind, k, phase)

    fresh.write(good)
    again = fresh.run("deploy", check=False)
    assert again.returncode == 0, f"killed at {crash.where()}\n{again.stderr}"
    fresh.assert_repaired(crash, good, recovered)
