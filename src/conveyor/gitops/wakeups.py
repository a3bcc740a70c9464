"""Early heals (pure): which environments the server heals before their heal interval, and when.

Something noticed about an environment (a Docker event of one of its containers, a change in
its HAProxy) is noted with the time it was noticed. A burst — `docker rm -f` is a kill, a die
and a destroy within milliseconds — makes one early heal: the first note of a burst sets when
(`debounce` seconds later) and the others join it. A full heal pass covers what was noted
before it began, so those notes are dropped; what is noted while a heal runs makes another one
(the heal may have observed before it happened).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

DEBOUNCE = 0.25  # seconds a burst of events is given to arrive whole
_SHOWN = 4  # what-was-noticed phrases kept per early heal; the rest are counted


@dataclass
class Wakeups:
    debounce: float = DEBOUNCE
    _notes: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    def note(self, env: str, what: str, now: float) -> None:
        """`what` was noticed about `env` at `now` (monotonic seconds)."""
        self._notes.setdefault(env, []).append((now, what))

    def next_due(self) -> float | None:
        """When the next early heal is due (None: none is)."""
        firsts = [notes[0][0] for notes in self._notes.values() if notes]
        return min(firsts) + self.debounce if firsts else None

    def take_due(self, now: float) -> dict[str, str]:
        """The environments whose early heal is due at `now`, each with what was noticed
        (`destroy of web-2-1, kill of web-2-1`); they are forgotten."""
        due = {
            env: notes
            for env, notes in self._notes.items()
            if notes and notes[0][0] + self.debounce <= now
        }
        for env in due:
            del self._notes[env]
        return {env: _told(w for _, w in notes) for env, notes in due.items()}

    def covered(self, before: float, envs: set[str] | None = None) -> None:
        """A heal of `envs` (None: every environment) began at `before`: what was noted until
        then is seen by it."""
        for env in list(self._notes):
            if envs is None or env in envs:
                left = [(t, w) for t, w in self._notes[env] if t >= before]
                if left:
                    self._notes[env] = left
                else:
                    del self._notes[env]


def _told(whats: Iterable[str]) -> str:
    unique = list(dict.fromkeys(whats))
    shown = ", ".join(unique[:_SHOWN])
    more = len(unique) - _SHOWN
    return f"{shown} and {more} more" if more > 0 else shown
