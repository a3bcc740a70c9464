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
from conveyor.model.release import HealBackoff


@dataclass
class Reconciler:
    engine: Engine
    clock: Callable[[], float] = field(default=time.time)
    name: str = "reconciler"

    def tick(self) -> Outcome | None:
        """One observation, and a heal if one is needed. Raises LockBusy while a command works
        on the project (the caller looks again next tick)."""
        engine = self.engine
        store = engine.store
        # Only this reconciler writes the backoff, under the lock: one read serves the tick.
        blocked = self._blocked()
        if not store.rollouts.running() and engine.heal_plan(skip=blocked).empty:
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

    def _blocked(self) -> set[str]:
        now = self.clock()
        return {s for s, b in self.engine.store.backoff.all().items() if b.not_before > now}
