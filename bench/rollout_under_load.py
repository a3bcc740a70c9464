"""Steady load while doing N rollouts and M replica kills, then the same against Docker Compose.

Prints: requests, failed requests, p50/p99 latency, each rollout's duration (as recorded by
Conveyor and as wall time of the `conveyor deploy` command), the time each killed replica
stayed in HAProxy's rotation, and the agent's idle memory.

With project networks (the default, `--network project`) the project also has a TCP service
(`tcp`, two replicas) and a `caller` container: during the rollouts and kills it calls
`web:8000` and `tcp:5432` by name (east-west, a new connection per request) while the host
loads the published port (north-south); every failure of each path is counted. Then, from
inside the caller: the latency a service address adds over calling a replica directly, and
the load at which errors start (saturation) for both paths. `--network host` runs Conveyor 0.1's
mode (north-south only).

Last, the peer users have today, in the same run: Debian's `docker-compose` (1.29) recreating
the same service three times under the same north-south and east-west load; both failure
counts are printed side by side. (The peer's network is Compose's own default bridge, not
internal: Docker publishes no port of a container on internal networks only.)

    .venv/bin/python bench/rollout_under_load.py [--rollouts 10] [--kills 3] [--rate 300]
        [--network project|host] [--no-peer]

Targets (issue 2): 0 failed requests across 10 rollouts at >= 300 requests/s; a killed replica
out of rotation in <= 1 s; a 2-replica rollout of a prebuilt image with an instant probe in
<= 5 s; the agent <= 100 MB RSS while idle. Issue 8: 0 failed east-west (HTTP and TCP) too; a
service address adds <= 0.3 ms p50 over calling a replica directly.

Measured 2026-12-06 (docs/networking.md, "Measured"), `--rollouts 1 --kills 0 --no-peer
--saturation-seconds 1 --rate 100`: a service address adds +0.14 to +0.29 ms p50 now that
HAProxy keeps its connections to the replicas alive (+0.42 to +0.62 ms with a new connection
per request, `option http-server-close`, before).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import ROOT, conveyor, conveyor_json, rss_mb

from conveyor.deploy.project import ProjectPaths
from conveyor.router.haproxy import HAProxyRouter
from conveyor.testing.load import LoadGenerator
from conveyor.testing.net import free_port


def set_version(compose: Path, version: str) -> None:
    doc = yaml.safe_load(compose.read_text())
    for name in ("web", "tcp"):
        if name in doc["services"]:
            doc["services"][name].setdefault("environment", {})["APP_VERSION"] = version
    compose.write_text(yaml.safe_dump(doc, sort_keys=False))


def write_stack(compose: Path, network: str) -> None:
    """The bench app's compose file, made for the mode measured."""
    doc = yaml.safe_load(compose.read_text())
    if network == "host":
        doc["services"]["web"]["network_mode"] = "host"
    else:
        doc["services"]["tcp"] = {
            "build": ".",
            "command": ["python", "/app/tcp.py"],
            "environment": {"APP_VERSION": "1"},
            "deploy": doc["services"]["web"]["deploy"],
            "stop_grace_period": "2s",
            "expose": [5432],
        }
        doc["services"]["caller"] = {
            "build": ".",
            "command": ["sleep", "infinity"],
            "stop_signal": "SIGKILL",
        }
        # nothing of the bench needs a way out of the machine
        doc["networks"] = {"default": {"internal": True}}
    compose.write_text(yaml.safe_dump(doc, sort_keys=False))


def in_caller(container: str, *args: str) -> Any:
    out = subprocess.run(
        ["docker", "exec", container, "python", "/app/caller.py", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(out.stdout)


def east_west_start(container: str) -> subprocess.Popen[str]:
    subprocess.run(["docker", "exec", container, "rm", "-f", "/tmp/stop"], check=True)
    return subprocess.Popen(
        ["docker", "exec", container, "python", "/app/caller.py", "load",
         "http://web:8000/", "tcp:5432"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def east_west_stop(container: str, proc: subprocess.Popen[str]) -> dict[str, Any]:
    subprocess.run(["docker", "exec", container, "touch", "/tmp/stop"], check=True)
    out, _ = proc.communicate(timeout=60)
    return dict(json.loads(out))


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
    ap.add_argument("--network", choices=("project", "host"), default="project")
    ap.add_argument("--no-peer", action="store_true", help="skip the Docker Compose peer")
    ap.add_argument("--saturation-seconds", type=float, default=2.0)
    args = ap.parse_args()

    ours = run_conveyor(args)
    if args.no_peer:
        return
    peer = run_compose_peer(args)
    print()
    print("side by side (failed requests / requests):")
    print(f"  conveyor ({args.network} networks): {ours}")
    print(f"  docker-compose 1.29 (3 recreations): {peer}")


def run_conveyor(args: argparse.Namespace) -> str:
    work = Path(tempfile.mkdtemp(prefix="cvb-"))
    shutil.copytree(ROOT / "bench" / "app", work, dirs_exist_ok=True)
    compose = work / "compose.yaml"
    write_stack(compose, args.network)
    port = free_port()
    os.environ["BENCH_PORT"] = str(port)
    project = "bench"
    caller = f"{project}-caller-1-1"
    paths = ProjectPaths(compose.resolve(), project)
    networked = args.network == "project"
    try:
        t0 = time.monotonic()
        up = conveyor(compose, "up")
        if up.returncode != 0:
            raise SystemExit(up.stderr)
        print(f"up ({args.network} networks): {time.monotonic() - t0:.1f}s (image build included)")
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
        east_west = east_west_start(caller) if networked else None
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
        ew = east_west_stop(caller, east_west) if east_west is not None else None
        print()
        print(f"north-south load: {res.summary()}")
        if res.errors:
            print(f"errors: {dict(res.errors)}")
            stamps = sorted(res.failed_at)
            print(
                f"failures between {time.strftime('%H:%M:%S', time.localtime(stamps[0]))} and "
                f"{time.strftime('%H:%M:%S', time.localtime(stamps[-1]))}"
            )
        if ew is not None:
            print(
                f"east-west by name: HTTP web:8000 {ew['http_ok']} ok, {ew['http_failed']} failed; "
                f"TCP tcp:5432 {ew['tcp_ok']} ok, {ew['tcp_failed']} failed {ew['errors'] or ''}"
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
        if networked:
            measure_paths(compose, caller, args.saturation_seconds)
        time.sleep(3)
        print(f"agent idle RSS after the run: {rss_mb(agent_pid):.1f} MB")
        summary = f"north-south {res.failures}/{res.requests}"
        if ew is not None:
            summary += (
                f", east-west HTTP {ew['http_failed']}/{ew['http_ok'] + ew['http_failed']}, "
                f"TCP {ew['tcp_failed']}/{ew['tcp_ok'] + ew['tcp_failed']}"
            )
        return summary
    finally:
        conveyor(compose, "down")
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work} (agent log: {paths.agent_log})")
        else:
            shutil.rmtree(work, ignore_errors=True)


def measure_paths(compose: Path, caller: str, seconds: float) -> None:
    """From inside the project network: a service address against a replica called directly."""
    web = next(s for s in conveyor_json(compose, "status")["services"] if s["name"] == "web")
    direct = f"http://{web['replicas'][0]['address']}:8000/"
    named = "http://web:8000/"
    lat = in_caller(caller, "latency", named, direct, "2000", "5")
    added = lat[named] - lat[direct]
    print(
        f"latency p50 (median of 5 rounds x 2000 keep-alive GETs): direct {lat[direct]:.3f} ms, "
        f"through the service address {lat[named]:.3f} ms, added {added:.3f} ms (target <= 0.3)"
    )
    for label, url in (("direct to one replica", direct), ("service address", named)):
        levels = in_caller(caller, "saturate", url, str(seconds))
        first_error = next((lv["workers"] for lv in levels if lv["failed"]), None)
        peak = max(levels, key=lambda lv: lv["rps"])
        print(
            f"saturation, {label}: peak {peak['rps']} req/s at {peak['workers']} clients; "
            f"errors from {first_error or 'none up to 64'} clients; "
            + " ".join(f"{lv['workers']}:{lv['rps']}/{lv['failed']}" for lv in levels)
        )


PEER = """\
services:
  web:
    build: .
    environment: {{APP_VERSION: "{version}", PORT: "8000", HOST: "0.0.0.0"}}
    ports: ["127.0.0.1:{port}:8000"]
    stop_grace_period: 2s
  caller:
    build: .
    command: ["sleep", "infinity"]
"""


def run_compose_peer(args: argparse.Namespace) -> str:
    """Docker Compose 1.29 recreating the same one-replica service three times under the same
    north-south and east-west load (its east-west goes by Docker's DNS to the container)."""
    if shutil.which("docker-compose") is None:
        print("docker-compose not installed (`apt-get install docker-compose`): no peer figures")
        return "not measured"
    work = Path(tempfile.mkdtemp(prefix="cvp-"))
    shutil.copytree(ROOT / "bench" / "app", work, dirs_exist_ok=True)
    compose = work / "docker-compose.yml"
    port = free_port()
    project = f"peer{os.getpid()}"
    dc = ["docker-compose", "-p", project, "-f", str(compose)]
    try:
        compose.write_text(PEER.format(version=1, port=port))
        subprocess.run([*dc, "up", "-d", "--build"], check=True, capture_output=True, timeout=600)
        caller = f"{project}_caller_1"
        deadline = time.monotonic() + 30
        while subprocess.run(
            ["curl", "-sf", f"http://127.0.0.1:{port}/"], capture_output=True, check=False
        ).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("the Docker Compose peer did not answer")
            time.sleep(0.2)
        load = LoadGenerator(port, "/", workers=args.workers, rate=args.rate, max_seconds=600)
        load.start()
        proc = subprocess.Popen(
            ["docker", "exec", caller, "python", "/app/caller.py", "load",
             "http://web:8000/", "web:8000"],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        time.sleep(1)
        for i in range(3):
            compose.write_text(PEER.format(version=i + 2, port=port))
            t = time.monotonic()
            subprocess.run([*dc, "up", "-d", "web"], check=True, capture_output=True, timeout=600)
            print(f"docker-compose recreation {i + 1}: {time.monotonic() - t:.2f}s")
            time.sleep(1)
        res = load.stop()
        subprocess.run(["docker", "exec", caller, "touch", "/tmp/stop"], check=True)
        ew = json.loads(proc.communicate(timeout=60)[0])
        print(f"docker-compose north-south: {res.summary()} {dict(res.errors) or ''}")
        print(
            f"docker-compose east-west web:8000: {ew['http_ok']} ok, {ew['http_failed']} failed "
            f"{ew['errors'] or ''}"
        )
        return (
            f"north-south {res.failures}/{res.requests}, "
            f"east-west HTTP {ew['http_failed']}/{ew['http_ok'] + ew['http_failed']}"
        )
    finally:
        down = [*dc, "down", "-v", "--rmi", "local"]
        subprocess.run(down, capture_output=True, timeout=300, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
