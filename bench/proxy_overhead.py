"""Latency direct to a replica vs through Conveyor's HAProxy, in the same run.

Starts the benchmark app (bench/app/app.py) as a local process, puts it behind an HAProxy
frontend managed by Conveyor's router, then sends sequential keep-alive GETs in alternating
rounds to both so that machine noise hits both sides alike.

    .venv/bin/python bench/proxy_overhead.py [--requests 5000] [--rounds 5]

Target (issue 2): p50 overhead <= 0.5 ms.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

from conveyor.deploy.probe import http_ok
from conveyor.router.haproxy import HAProxyRouter
from conveyor.router.protocol import Frontend, RouterConfig, ServerEntry
from conveyor.testing.load import LoadGenerator, LoadResult
from conveyor.testing.net import free_port


def run(port: int, n: int) -> LoadResult:
    return LoadGenerator(port, "/", workers=1, max_requests=n, max_seconds=120).run_to_bound()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=5000, help="per side per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    app_port, fe_port = free_port(), free_port()
    env = {**os.environ, "PORT": str(app_port), "HOST": "127.0.0.1"}
    app = subprocess.Popen([sys.executable, str(ROOT / "bench" / "app" / "app.py")], env=env)
    run_dir = Path(tempfile.mkdtemp(prefix="cvp-"))
    router = HAProxyRouter(run_dir / "haproxy")
    try:
        for _ in range(100):
            if http_ok(app_port, "/health", 0.5):
                break
            time.sleep(0.05)
        router.ensure(
            RouterConfig(frontends=(Frontend(service="web", port=fe_port, check_path="/health"),))
        )
        router.add_server("web", ServerEntry(name="web-1", port=app_port))
        for _ in range(100):
            if http_ok(fe_port, "/", 0.5):
                break
            time.sleep(0.05)
        run(app_port, 500)  # warm both paths
        run(fe_port, 500)
        direct, proxied = LoadResult(), LoadResult()
        for r in range(args.rounds):
            d, p = run(app_port, args.requests), run(fe_port, args.requests)
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
    finally:
        router.stop()
        app.send_signal(signal.SIGTERM)
        app.wait(timeout=10)


if __name__ == "__main__":
    main()
