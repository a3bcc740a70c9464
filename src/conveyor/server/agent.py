"""The supervising agent: keeps HAProxy up, replaces crashed or unhealthy replicas, keeps the
replica count, and finishes rollouts a crash interrupted. Backs off per service so a crash
loop does not spin."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

import structlog

from conveyor.deploy.engine import Engine
from conveyor.deploy.project import ProjectPaths, project_lock
from conveyor.errors import ConveyorError, LockBusy

log = structlog.get_logger("conveyor.agent")

# A service healed again within this window counts as crash-looping.
LOOP_WINDOW = 30.0
MAX_BACKOFF = 60.0


@dataclass
class Backoff:
    """Per-service exponential backoff between heals: 1, 2, 4 … 60 s."""

    last_heal: dict[str, float] = field(default_factory=dict)
    streak: dict[str, int] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)

    def blocked(self, now: float) -> set[str]:
        return {s for s, t in self.not_before.items() if t > now}

    def healed(self, service: str, now: float) -> float:
        """Record a heal of `service`; return the delay before the next one may run."""
        prev = self.last_heal.get(service)
        streak = (
            self.streak.get(service, 0) + 1 if prev is not None and now - prev < LOOP_WINDOW else 0
        )
        self.streak[service] = streak
        self.last_heal[service] = now
        delay = 0.0 if streak == 0 else min(MAX_BACKOFF, 2.0 ** (streak - 1))
        self.not_before[service] = now + delay
        return delay


@dataclass
class Agent:
    paths: ProjectPaths
    make_engine: Callable[[], Engine]
    interval: float = 1.0
    stop_event: threading.Event = field(default_factory=threading.Event)
    backoff: Backoff = field(default_factory=Backoff)

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("agent.stopping", signal=signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> None:
        log.info("agent.started", project=self.paths.project)
        engine = self.make_engine()
        while not self.stop_event.is_set():
            try:
                self.tick(engine)
            except LockBusy:
                pass  # a CLI command is working on the project; look again next tick
            except ConveyorError as e:
                log.warning("agent.tick_failed", error=str(e))
            except Exception as e:
                log.exception("agent.tick_crashed", error=str(e))
            self.stop_event.wait(self.interval)
        log.info("agent.stopped")

    def tick(self, engine: Engine) -> None:
        with project_lock(self.paths, wait=0.2, holder="agent"):
            for o in engine.recover():
                log.info("agent.recovered", rollout=o.rollout_id, status=o.status, error=o.error)
            now = time.monotonic()
            skip = self.backoff.blocked(now)
            outcome = engine.heal(skip=skip)
            if outcome is None:
                return
            for svc in outcome.services:
                delay = self.backoff.healed(svc, time.monotonic())
                if delay:
                    log.warning("agent.backoff", service=svc, seconds=delay)
            log.info(
                "agent.healed",
                rollout=outcome.rollout_id,
                status=outcome.status,
                services=list(outcome.services),
                error=outcome.error,
                seconds=round(outcome.duration, 3),
            )
