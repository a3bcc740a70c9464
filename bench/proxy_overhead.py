"""Latency direct to a replica vs through Conveyor's HAProxy, in the same run (north-south).

Starts the benchmark app (bench/app/app.py) as local processes, puts them behind an HAProxy
frontend managed by Conveyor's router (servers added at run time, as rollouts add replicas,
with the configuration Conveyor renders), then sends sequential keep-alive GETs in alternating
rounds to one replica and to the frontend so that machine noise hits both sides alike. Last,
how many connections HAProxy opened to the replicas for how many requests: one per request
means server connections are not reused (see `SERVER_POOL` in src/conveyor/render/haproxy.py).
A fast loop for experiments with the rendered configuration: no containers.

    .venv/bin/python bench/proxy_overhead.py [--requests 5000] [--rounds 5] [--replicas 2]

Targets: issue 2, p50 overhead <= 0.5 ms; issue 8, a service address adds <= 0.3 ms p50 (that
one is measured east-west by bench/rollout_under_load.py). Measured 2026-12-06 on this 2-core
machine at load average ~10 from other work, `--requests 2000 --rounds 5`, the two
configurations in turn: p50 overhead +0.17 and +0.19 ms with server connections kept alive (4
and 5 connections for 10,501 requests); +0.39 and +0.50 ms with `option http-server-close`
(10,501 connections), which Conveyor rendered before.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

from conveyor.deploy.probe import http_ok
from conveyor.model.endpoint import Endpoint
from conveyor.router.haproxy import HAProxyRouter
from conveyor.router.protocol import Frontend, RouterConfig, ServerEntry
from conveyor.testing.load import LoadGenerator, LoadResult
from conveyor.testing.net import free_port


def run(port: int, n: int) -> LoadResult:
    return LoadGenerator(port, "/", workers=1, max_requests=n, max_seconds=120).run_to_bound()


def wait_ok(port: int, path: str) -> None:
    for _ in range(100):
        if http_ok(Endpoint.loopback(port), path, 0.5):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing answers GET {path} on 127.0.0.1:{port}")


def server_connections(router: HAProxyRouter) -> tuple[int, int]:
    """(connections HAProxy opened to the servers of be_web, requests those servers answered)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(router.admin_socket))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    lines = b"".join(chunks).decode().splitlines()
    header = lines[0].removeprefix("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    backend = next(r for r in rows if (r["pxname"], r["svname"]) == ("be_web", "BACKEND"))
    return int(backend["connect"]), int(backend["stot"])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=5000, help="per side per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--replicas", type=int, default=2, help="behind HAProxy (round robin)")
    args = ap.parse_args()

    app_ports, fe_port = [free_port() for _ in range(args.replicas)], free_port()
    apps = []
    for port in app_ports:
        env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
        # HAProxy's health checks close their connection with a reset, which the app reports
        # as a traceback each: not what is measured.
        apps.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "app" / "app.py")],
                env=env,
                stderr=subprocess.DEVNULL,
            )
        )
    run_dir = Path(tempfile.mkdtemp(prefix="cvp-"))
    router = HAProxyRouter(run_dir / "haproxy")
    try:
        for port in app_ports:
            wait_ok(port, "/health")
        router.ensure(
            RouterConfig(frontends=(Frontend(service="web", port=fe_port, check_path="/health"),))
        )
        for i, port in enumerate(app_ports):
            router.add_server(
                "web", ServerEntry(name=f"web-{i + 1}", endpoint=Endpoint.loopback(port))
            )
        wait_ok(fe_port, "/")
        run(app_ports[0], 500)  # warm both paths
        run(fe_port, 500)
        direct, proxied = LoadResult(), LoadResult()
        for r in range(args.rounds):
            d, p = run(app_ports[0], args.requests), run(fe_port, args.requests)
            direct.latencies += d.latencies
            direct.failures += d.failures
            proxied.latencies += p.latencies
            proxied.failures += p.failures
            print(
                f"round {r + 1}: direct p50 {d.percentile(50) * 1e3:.3f} ms, "
                f"haproxy p50 {p.percentile(50) * 1e3:.3f} ms"
            )
        d50, d99 = direct.percentile(50) * 1e3, direct.percentile(99) * 1e3
        p50, p99 = proxied.percentile(50) * 1e3, proxied.percentile(99) * 1e3
        connections, requests = server_connections(router)
        print()
        print(
            f"direct : p50 {d50:.3f} ms  p99 {d99:.3f} ms  ({len(direct.latencies)} ok, {direct.failures} failed)"
        )
        print(
            f"haproxy: p50 {p50:.3f} ms  p99 {p99:.3f} ms  ({len(proxied.latencies)} ok, {proxied.failures} failed)"
        )
        print(
            f"overhead: p50 {p50 - d50:+.3f} ms ({p50 / d50:.2f}x), p99 {p99 - d99:+.3f} ms ({p99 / d99:.2f}x)"
        )
        print(f"HAProxy opened {connections} connections to the replicas for {requests} requests")
    finally:
        router.stop()
        for app in apps:
            app.send_signal(signal.SIGTERM)
        for app in apps:
            app.wait(timeout=10)


if __name__ == "__main__":
    main()
