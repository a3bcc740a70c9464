"""Latest commit wins while a pipeline runs: what the GitOps controller's watcher thread and its
worker share about the pipeline the worker runs now, and what they tell people.

The worker registers the pipeline it is about to run (`Running`); the watcher, woken by a
webhook or on the poll interval, fetches and, when the environment's branch names a newer
commit, applies GitLab's auto-cancel to that pipeline (`app.ci.supersede`: the pipeline's own
`workflow:auto_cancel:on_new_commit`). When the pipeline ends, the worker does not roll the
superseded commit out (whether its pipeline was canceled or ran to the end) and brings the
newer one in; that is reported as superseded, at info level, never as a failure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.ci.run.records import Redundant
from conveyor.model.environments import EnvironmentSpec


@dataclass
class Running:
    """The pipeline the worker runs to bring `commit` into `spec`'s environment."""

    spec: EnvironmentSpec
    commit: str
    pipeline_file: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _newer: str | None = None  # the newest commit of the branch seen since it started
    _applied: str | None = None  # the newer commit auto-cancel was applied for
    _decided: tuple[Redundant, ...] = ()

    @property
    def newer(self) -> str | None:
        with self._lock:
            return self._newer

    def saw(self, commit: str) -> None:
        with self._lock:
            self._newer = commit

    def to_apply(self) -> str | None:
        """The newer commit whose auto-cancel is still to be applied: none when nothing is
        newer, or when it was applied (for this commit, or already canceling everything)."""
        with self._lock:
            if self._newer is None or self._newer == self._applied:
                return None
            if any(d.action == "canceled" for d in self._decided):
                return None  # canceled already: a later commit changes nothing
            return self._newer

    def applied(self, commit: str, decided: list[Redundant]) -> None:
        with self._lock:
            self._applied = commit
            self._decided = tuple(decided)


class Superseded(Exception):
    """Raised by the worker when the commit it brought in was superseded: not deployed, not
    failed."""

    def __init__(self, by: str, outcome: str) -> None:
        super().__init__(f"superseded by {by[:12]} ({outcome})")
        self.by = by
        self.outcome = outcome  # what became of its pipeline, in words


def notice(env: str, running: Running, newer: str, decided: Redundant) -> str:
    """What the watcher did, for the `sync.superseded` event."""
    branch = running.spec.branch
    head = f"{env}: {running.commit[:12]} is superseded by {newer[:12]}, newer on {branch}: "
    after = f"; {newer[:12]} is brought in after it"
    pid = decided.pipeline
    if decided.action == "canceled":
        return head + f"pipeline #{pid} is canceled"
    names = decided.not_interruptible
    jobs = ", ".join(names)
    one = len(names) == 1
    if decided.action == "interruptible":
        kept = ""
        if names:
            kept = f" (job {jobs} is" if one else f" (jobs {jobs} are"
            kept += " not interruptible: it runs on)" if one else " not interruptible: they run on)"
        return head + f"the interruptible jobs of pipeline #{pid} are canceled{kept}" + after
    why = "workflow:auto_cancel:on_new_commit: none"
    if names:
        why = f"job {jobs} started and is" if one else f"jobs {jobs} started and are"
        why += " not interruptible"
    return head + f"pipeline #{pid} runs to the end ({why})" + after
