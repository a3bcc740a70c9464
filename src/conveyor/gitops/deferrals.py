"""Syncs put off for a while, and when to try them again (pure).

A sync the fleet refused because no app host takes replicas at that moment (every one down,
or suspect: `plan.placement.NoAppHostUp`) is not the commit's failure: the commit is not
marked failed (which would keep it out until the branch moves) but *deferred*, and the
server tries it again `first` seconds later, then twice as long after each refusal of the
same commit, at most `longest` apart. It is tried at once when a fleet host is up again
(`hurry`). The regular poll tries it too (it is not failed), so a poll shorter than the
delay wins. Failures that are the user's (a bad file, a failed pipeline or build, a rollout
rolled back) are never deferred: they fail as before.

What is deferred is kept in memory only: a restarted server syncs every environment at once
anyway, and the deferred commit is not failed, so that first pass tries it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FIRST_RETRY = 5.0  # seconds before the first try again
LONGEST_RETRY = 300.0  # seconds between tries, at the most
_MOST_DOUBLINGS = 30  # 2**30 times `first` is past any `longest`: no float overflow


def retry_delay(attempts: int, first: float = FIRST_RETRY, longest: float = LONGEST_RETRY) -> float:
    """Seconds to wait after the `attempts`-th refusal in a row of one commit (1: the first)."""
    doublings = min(max(attempts - 1, 0), _MOST_DOUBLINGS)
    return min(longest, first * float(2**doublings))


@dataclass(frozen=True)
class Deferral:
    """An environment's sync of `commit`, refused `attempts` times in a row for want of a
    host; tried again at `due` (monotonic seconds; None: it is being tried now)."""

    commit: str
    attempts: int
    delay: float  # seconds from the last refusal to `due`
    due: float | None


@dataclass
class Deferrals:
    first: float = FIRST_RETRY
    longest: float = LONGEST_RETRY
    _held: dict[str, Deferral] = field(default_factory=dict)

    def defer(self, env: str, commit: str, now: float) -> Deferral:
        """`env`'s sync of `commit` was refused at `now` for want of a host: when to try it
        again (the attempts count again from one for another commit)."""
        before = self._held.get(env)
        attempts = before.attempts + 1 if before is not None and before.commit == commit else 1
        delay = retry_delay(attempts, self.first, self.longest)
        deferral = Deferral(commit=commit, attempts=attempts, delay=delay, due=now + delay)
        self._held[env] = deferral
        return deferral

    def drop(self, env: str) -> None:
        """`env`'s sync ended otherwise (done, failed, superseded, nothing to do)."""
        self._held.pop(env, None)

    def get(self, env: str) -> Deferral | None:
        return self._held.get(env)

    def hurry(self, now: float) -> bool:
        """A fleet host is up again: every deferred sync waiting is due at `now`. Whether
        any was."""
        waiting = {e: d for e, d in self._held.items() if d.due is not None and d.due > now}
        for env, deferral in waiting.items():
            self._held[env] = Deferral(deferral.commit, deferral.attempts, deferral.delay, now)
        return bool(waiting)

    def next_due(self) -> float | None:
        """When the next deferred sync is due (None: none waits)."""
        dues = [d.due for d in self._held.values() if d.due is not None]
        return min(dues) if dues else None

    def take_due(self, now: float) -> list[str]:
        """The environments whose deferred sync is due at `now`, marked as being tried: it
        is not due again until it is deferred again (a pass that does not reach it, e.g. the
        source could not be fetched, leaves it to the poll)."""
        due = sorted(e for e, d in self._held.items() if d.due is not None and d.due <= now)
        for env in due:
            deferral = self._held[env]
            self._held[env] = Deferral(deferral.commit, deferral.attempts, deferral.delay, None)
        return due
