"""Steady load on loopback while doing N rollouts and M replica kills.

Prints: requests, failed requests, p50/p99 latency, each rollout's duration (as recorded by
Conveyor and as wall time of the `conveyor deploy` command), the time each killed replica
stayed in HAProxy's rotation, and the agent's idle memory.

    .venv/bin/python bench/rollout_under_load.py [--rollouts 10] [--kills 3] [--rate 300]

Targets (issue 2): 0 failed requests across 10 rollouts at >= 300 requests/s; a killed replica
out of rotation in <= 1 s; a 2-replica rollout of a prebuilt image with an instant probe in
<= 5 s; the agent <= 100 MB RSS while idle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from common import ROOT, conveyor, conveyor_json, rss_mb

from conveyor.deploy.project import ProjectPaths
from conveyor.router.haproxy import HAProxyRouter
from conveyor.testing.load import LoadGenerator
from conveyor.testing.net import free_port


def set_version(compose: Path, version: str) -> None:
    doc = yaml.safe_load(compose.read_text())
    doc["services"]["web"]["environment"]["APP_VERSION"] = version
    compose.write_text(yaml.safe_dump(doc, sort_keys=False))


def time_in_rotation(router: HAProxyRouter, compose: Path, project: str) -> float:
    """SIGKILL one ready replica; return seconds until HAProxy no longer sends it traffic."""
    st = conveyor_json(compose, "status")
    web = next(s for s in st["services"] if s["name"] == "web")
    victim = next(r["name"] for r in web["replicas"] if r["router"] == "ready")
    t0 = time.monotonic()
    subprocess.run(
        ["docker", "kill", "-s", "KILL", f"{project}-{victim}"], check=True, capture_output=True
    )
    while time.monotonic() - t0 < 10:
        mine = [s for s in router.servers() if s.server == victim]
        if not mine or mine[0].operational == "down" or mine[0].admin_state != "ready":
            return time.monotonic() - t0
        time.sleep(0.005)
    return float("inf")


def wait_replicas(compose: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        web = next(s for s in conveyor_json(compose, "status")["services"] if s["name"] == "web")
        if sum(1 for r in web["replicas"] if r["running"] and r["router"] == "ready") == n:
            return
        time.sleep(0.2)
    raise SystemExit("the agent did not restore the replica count")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rollouts", type=int, default=10)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--rate", type=float, default=330.0, help="requests/s offered (bounded)")
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cvb-"))
    shutil.copytree(ROOT / "bench" / "app", work, dirs_exist_ok=True)
    compose = work / "compose.yaml"
    port = free_port()
    os.environ["BENCH_PORT"] = str(port)
    project = "bench"
    paths = ProjectPaths(compose.resolve(), project)
    try:
        t0 = time.monotonic()
        up = conveyor(compose, "up")
        if up.returncode != 0:
            raise SystemExit(up.stderr)
        print(f"up: {time.monotonic() - t0:.1f}s (image build included)")
        time.sleep(5)
        agent_pid = int(paths.agent_pid_file.read_text())
        print(f"agent idle RSS: {rss_mb(agent_pid):.1f} MB")
        router = HAProxyRouter(paths.router_dir)

        load = LoadGenerator(
            port,
            "/",
            workers=args.workers,
            rate=args.rate,
            max_requests=int(args.rate * 900),
            max_seconds=900,
        )
        load.start()
        time.sleep(1)
        recorded: list[float] = []
        wall: list[float] = []
        for i in range(args.rollouts):
            set_version(compose, str(i + 2))
            t = time.monotonic()
            out = conveyor(compose, "deploy")
            wall.append(time.monotonic() - t)
            if out.returncode != 0:
                print(out.stderr)
            last = conveyor_json(compose, "history")["rollouts"][0]
            recorded.append(float(last["duration"] or 0))
            print(
                f"rollout {i + 1}: {last['status']}, {recorded[-1]:.2f}s recorded, {wall[-1]:.2f}s wall"
            )
        in_rotation: list[float] = []
        for k in range(args.kills):
            in_rotation.append(time_in_rotation(router, compose, project))
            print(
                f"kill {k + 1} at {time.strftime('%H:%M:%S')}: out of rotation after "
                f"{in_rotation[-1] * 1000:.0f} ms"
            )
            wait_replicas(compose, 2)
        time.sleep(1)
        res = load.stop()
        print()
        print(f"load: {res.summary()}")
        if res.errors:
            print(f"errors: {dict(res.errors)}")
            stamps = sorted(res.failed_at)
            print(
                f"failures between {time.strftime('%H:%M:%S', time.localtime(stamps[0]))} and "
                f"{time.strftime('%H:%M:%S', time.localtime(stamps[-1]))}"
            )
        if recorded:
            print(
                f"rollouts: {len(recorded)}, recorded duration median {statistics.median(recorded):.2f}s "
                f"max {max(recorded):.2f}s; command wall median {statistics.median(wall):.2f}s"
            )
        if in_rotation:
            print(
                f"killed replica in rotation: max {max(in_rotation) * 1000:.0f} ms, "
                f"median {statistics.median(in_rotation) * 1000:.0f} ms"
            )
        time.sleep(3)
        print(f"agent idle RSS after the run: {rss_mb(agent_pid):.1f} MB")
    finally:
        conveyor(compose, "down")
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work} (agent log: {paths.agent_log})")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
