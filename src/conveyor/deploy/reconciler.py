"""The reconciler: level-triggered convergence of a project to its current release.

Each tick re-observes (containers, HAProxy) and only when something differs — a dead or
failing replica, a missing server, a rollout a crash interrupted — takes the project lock and
acts: recover, then heal. A service healed again and again backs off (1, 2, 4 … 60 s); the
backoff is kept in the state database, so a restarted reconciler does not spin either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from conveyor.deploy.engine import Engine, Outcome
from conveyor.deploy.project import project_lock
from conveyor.errors import EngineUnreachable
from conveyor.model.release import HealBackoff

# After the Docker Engine answers again, how long before a heal may act: a restarted dockerd
# (an upgrade, a crash) is still restoring its containers' state for a moment.
SETTLE = 2.0


@dataclass
class Reconciler:
    engine: Engine
    clock: Callable[[], float] = field(default=time.time)
    name: str = "reconciler"
    settle: float = SETTLE
    # The services the last tick left alone (heal backoff) -> when they may be healed again.
    held: dict[str, float] = field(default_factory=dict)
    away_since: float | None = None  # when the engine stopped answering
    back_at: float | None = None  # when it answered again

    def tick(self) -> Outcome | None:
        """One observation, and a heal if one is needed. Raises LockBusy while a command works
        on the project (the caller looks again next tick).

        While the Docker Engine does not answer, nothing is replaced: with live-restore its
        replicas keep running (and serving through HAProxy) while dockerd restarts. Once it
        answers again the reconciler re-observes, and heals only after `settle` seconds."""
        try:
            return self._tick()
        except EngineUnreachable as e:
            if self.away_since is None:
                self.away_since = self.clock()
                self.engine.timeline.emit(
                    "engine.away",
                    f"the Docker Engine does not answer; replicas are left as they are until it "
                    f"is back ({e})",
                    level="warning",
                )
            return None

    def _tick(self) -> Outcome | None:
        engine = self.engine
        store = engine.store
        # Only this reconciler writes the backoff, under the lock: one read serves the tick.
        self.held = self._held()
        blocked = set(self.held)
        plan = engine.heal_plan(skip=blocked)  # observes: raises while the engine is away
        now = self.clock()
        if self.away_since is not None:
            engine.timeline.emit(
                "engine.back",
                f"the Docker Engine answers again after {now - self.away_since:.1f}s",
                data={"seconds": round(now - self.away_since, 3)},
            )
            self.away_since, self.back_at = None, now
        if self.back_at is not None:
            if now - self.back_at < self.settle:
                return None
            self.back_at = None
        if not store.rollouts.running() and plan.empty:
            return None
        with project_lock(engine.paths, wait=0.2, holder="agent"):
            engine.recover()
            outcome = engine.heal(skip=blocked)
            if outcome is None:
                return None
            backoffs = store.backoff.all()
            for svc in outcome.services:
                b = backoffs.get(svc, HealBackoff()).after_heal(self.clock())
                store.backoff.save(svc, b)
                if b.delay:
                    engine.timeline.emit(
                        "heal.backoff",
                        f"{svc} keeps failing: next heal in {b.delay:g}s",
                        level="warning",
                        service=svc,
                        data={"seconds": b.delay, "streak": b.streak},
                    )
            return outcome

    def held_until(self) -> float | None:
        """When the first service the last tick left alone, its heal backoff holding it back,
        may be healed again (this reconciler's clock; maybe past already), or None when the
        last tick held none back: whoever ticks it on events rather than on an interval ticks
        it again then. Taken from the tick itself, so a backoff ending during the tick is not
        mistaken for no backoff."""
        return min(self.held.values()) if self.held else None

    def _held(self) -> dict[str, float]:
        """The services their heal backoff holds back now -> until when."""
        now = self.clock()
        return {
            s: b.not_before
            for s, b in self.engine.store.backoff.all().items()
            if b.not_before > now
        }
