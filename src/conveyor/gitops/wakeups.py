"""Early heals (pure): which environments the server heals before their heal interval, and when.

Something noticed about an environment (a Docker event of one of its containers, a change in
its HAProxy) is noted with the time it was noticed. A burst — `docker rm -f` is a kill, a die
and a destroy, usually within a tenth of a second — makes one early heal, due once nothing more
was noticed for `debounce` seconds, and at the latest `longest` seconds after the burst began
(a stream of events does not put the heal off for ever). A heal can also be asked for at a
given time (`at`: when a service's heal backoff ends). A heal that begins covers what was
noticed before it, so those notes are dropped; what is noticed while a heal runs makes another
one (the heal may have observed before it happened).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

DEBOUNCE = 0.25  # seconds of quiet that end a burst of events
LONGEST = 1.0  # seconds a burst may put its heal off
_SHOWN = 4  # what-was-noticed phrases kept per early heal; the rest are counted


@dataclass(frozen=True)
class _Note:
    noticed: float  # when it was noticed (monotonic seconds)
    what: str
    at: float | None = None  # a heal asked for at this time, not noticed in a burst


@dataclass
class Wakeups:
    debounce: float = DEBOUNCE
    longest: float = LONGEST
    _notes: dict[str, list[_Note]] = field(default_factory=dict)

    def note(self, env: str, what: str, now: float) -> None:
        """`what` was noticed about `env` at `now` (monotonic seconds)."""
        self._notes.setdefault(env, []).append(_Note(now, what))

    def at(self, env: str, what: str, when: float) -> None:
        """Heal `env` at `when` (monotonic seconds) for `what`."""
        self._notes.setdefault(env, []).append(_Note(when, what, at=when))

    def _due(self, notes: list[_Note]) -> float:
        dues = [n.at for n in notes if n.at is not None]
        burst = [n.noticed for n in notes if n.at is None]
        if burst:
            dues.append(min(max(burst) + self.debounce, min(burst) + self.longest))
        return min(dues)

    def next_due(self) -> float | None:
        """When the next early heal is due (None: none is)."""
        dues = [self._due(notes) for notes in self._notes.values()]
        return min(dues) if dues else None

    def take_due(self, now: float) -> dict[str, str]:
        """The environments whose early heal is due at `now`, each with what was noticed
        (`destroy of web-2-1, kill of web-2-1`); they are forgotten (the heal's own results,
        such as a backoff, ask again)."""
        due = {env: notes for env, notes in self._notes.items() if self._due(notes) <= now}
        for env in due:
            del self._notes[env]
        return {env: _told(n.what for n in notes) for env, notes in due.items()}

    def covered(self, before: float, envs: set[str] | None = None) -> None:
        """A heal of `envs` (None: every environment) began at `before`: what was noticed
        until then is seen by it."""
        for env in list(self._notes):
            if envs is None or env in envs:
                left = [n for n in self._notes[env] if n.noticed >= before]
                if left:
                    self._notes[env] = left
                else:
                    del self._notes[env]


def _told(whats: Iterable[str]) -> str:
    unique = list(dict.fromkeys(whats))
    shown = ", ".join(unique[:_SHOWN])
    more = len(unique) - _SHOWN
    return f"{shown} and {more} more" if more > 0 else shown
