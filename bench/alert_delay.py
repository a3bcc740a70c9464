"""Time from a service going down to its alert reaching Conveyor's receiver (and from its
return to the resolved alert), with the default settings: Prometheus scraping and evaluating
every 5 s (docs/metrics.md), ServiceDown's `for: 15s`, Alertmanager's `group_wait: 5s` and
`group_interval: 30s`.

A real Prometheus and Alertmanager (Debian's), the rendered rules and receiver side, over a
fake HAProxy exporter (conveyor.testing.alert_stack): the fault is the exporter reporting no
replica up, so HAProxy's own detection (its health checks' `inter` x `fall`) comes on top of
these figures, and the notification channel's delivery after them.

    .venv/bin/python bench/alert_delay.py [--rounds 3]

Target (issue 10, item 9): 30 s or less from a fault to the notification of a service down.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from conveyor.model.events import Event
from conveyor.testing.alert_stack import alert_stack

GUARD = 180.0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=10)
    args = ap.parse_args()

    seen: list[tuple[float, Event]] = []
    arrived = threading.Condition()

    def record(event: Event) -> None:
        if event.data.get("alertname") == "ServiceDown":
            with arrived:
                seen.append((time.monotonic(), event))
                arrived.notify_all()

    def wait(kind: str, after: float) -> float:
        with arrived:
            ok = arrived.wait_for(
                lambda: any(e.kind == kind and t >= after for t, e in seen), timeout=GUARD
            )
        if not ok:
            raise SystemExit(f"no {kind} within {GUARD:g} s")
        return next(t for t, e in seen if e.kind == kind and t >= after) - after

    rng = random.Random(args.seed)
    down: list[float] = []
    back: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="cv-alerts-") as tmp,
        alert_stack(Path(tmp), [record], interval="5s") as stack,
    ):
        time.sleep(12)  # a few scrapes with every replica up: the baseline
        for i in range(args.rounds):
            # a fault at a random phase of the scrape, evaluation and group ticks (else the
            # rounds lock onto them and measure one phase)
            time.sleep(rng.uniform(0, 10))
            t0 = time.monotonic()
            with stack.target.lock:
                stack.target.active = 0
            down.append(wait("alert.firing", t0))
            t1 = time.monotonic()
            with stack.target.lock:
                stack.target.active = 2
            back.append(wait("alert.resolved", t1))
            print(
                f"round {i + 1}: down -> firing {down[-1]:.1f} s, back -> resolved {back[-1]:.1f} s"
            )
    print(
        f"fault -> alert.firing: median {statistics.median(down):.1f} s, max {max(down):.1f} s "
        f"(target <= 30 s); recovery -> alert.resolved: median {statistics.median(back):.1f} s, "
        f"max {max(back):.1f} s ({args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
