"""A copy of examples/shop brought up by the real `conveyor` command for a module's tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.testing.net import free_port

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "shop"


@dataclass
class Shop:
    dir: Path
    project: str
    gateway_port: int

    overrides: tuple[str, ...] = ()  # more -f files, merged onto compose.yaml in order

    @property
    def compose(self) -> Path:
        return self.dir / "compose.yaml"

    def command(self, *args: str) -> list[str]:
        files = [str(self.compose), *(str(self.dir / name) for name in self.overrides)]
        flags = [flag for f in files for flag in ("-f", f)]
        return [sys.executable, "-m", "conveyor", *flags, "-p", self.project, *args]

    def conveyor(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        cmd = self.command(*args)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def status(self) -> dict[str, Any]:
        return json.loads(self.conveyor("status", "--json").stdout)

    def history(self) -> dict[str, Any]:
        return json.loads(self.conveyor("history", "--json").stdout)

    def edit(self, fn: Any) -> None:
        """Change the compose file: fn(document) mutates the parsed YAML in place."""
        # a JSON round trip un-shares YAML anchors, so editing one service edits only it
        doc = json.loads(json.dumps(yaml.safe_load(self.compose.read_text())))
        fn(doc)
        self.compose.write_text(yaml.safe_dump(doc, sort_keys=False))

    @property
    def state_db(self) -> Path:
        return self.dir / ".conveyor" / self.project / "state.db"

    def journal(self) -> list[tuple[int, int, str, str]]:
        with sqlite3.connect(self.state_db, timeout=10) as db:
            return list(
                db.execute(
                    "SELECT rollout_id, seq, step, status FROM journal ORDER BY rollout_id, seq"
                )
            )

    def containers(self, label: str | None = None) -> list[str]:
        """The project's containers (with `label`: only those carrying it)."""
        filters = ["--filter", f"label=io.conveyor.project={self.project}"]
        if label is not None:
            filters += ["--filter", f"label={label}"]
        out = subprocess.run(
            ["docker", "ps", "-aq", *filters], capture_output=True, text=True, check=True
        ).stdout
        return out.split()

    def replicas(self) -> list[str]:
        return self.containers("io.conveyor.replica")

    def addresses(self) -> list[str]:
        """Service address containers (project networks)."""
        return self.containers("io.conveyor.address")

    def wait_for(self, pred: Any, timeout: float = 60, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = pred()
            if last:
                return last
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def remove_project_images(project: str) -> None:
    """Conveyor tags each build `<project>-<service>:<content hash>`; drop this test's tags."""
    out = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    mine = [ref for ref in out.split() if ref.startswith(f"{project}-")]
    if mine:
        subprocess.run(["docker", "rmi", *mine], capture_output=True, check=False)


def set_env(doc: dict[str, Any], service: str, **env: str) -> None:
    svc = doc["services"][service]
    e = svc.setdefault("environment", {})
    if isinstance(e, list):
        e = dict(item.split("=", 1) for item in e)
        svc["environment"] = e
    e.update(env)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[Shop]:
    d = tmp_path_factory.mktemp("shop")
    shutil.copytree(EXAMPLE, d, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".conveyor"))
    s = Shop(dir=d, project=f"shop-{uuid.uuid4().hex[:6]}", gateway_port=free_port())

    def public(doc: dict[str, Any]) -> None:
        xc = doc["services"]["gateway"].setdefault("x-conveyor", {})
        xc["public_port"] = s.gateway_port
        doc["services"]["gateway"].pop("ports", None)

    s.edit(public)
    s.conveyor("up", timeout=900)
    yield s
    tear_down(s)


def tear_down(s: Shop, *down_flags: str) -> None:
    """`conveyor down`, then remove by PID and by label whatever a failed down left."""
    proc = s.conveyor("down", *down_flags, check=False)
    pid_file = s.dir / ".conveyor" / s.project / "agent.pid"
    if pid_file.exists():  # safety net: down failed before stopping the agent
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    left = s.containers()
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
    remove_project_images(s.project)
    assert proc.returncode == 0, proc.stderr
