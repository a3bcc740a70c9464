"""What the server does next for one environment, decided from git and what it remembers
(pure). The controller (app/controller.py) fetches, asks `decide`, and carries the answer out
with the CI engine and the deploy engine.

Latest commit wins: only the head of the environment's branch is considered, so commits pushed
while an older one was in its pipeline are skipped. A commit whose pipeline or rollout failed
is not tried again until the branch moves (a push, a revert): the previous release keeps
serving meanwhile.
"""

from __future__ import annotations

from typing import Literal

from conveyor.model.environments import EnvironmentSpec
from conveyor.model.stack import Frozen

Decision = Literal["sync", "in_sync", "failed", "suspended", "no_branch", "promotion"]


class EnvProgress(Frozen):
    """What the controller remembers of an environment (kept in the server's data directory,
    so a restarted server neither redeploys what serves nor retries what failed)."""

    desired: str | None = None  # the branch's head when last fetched
    deployed: str | None = None  # the commit serving
    failed: str | None = None  # the newest commit that failed (pipeline, rollout, signature)
    reason: str = ""  # why it failed
    suspended: bool = False
    syncing: str | None = None  # the commit being brought in (a crash leaves it set)


def head_of(spec: EnvironmentSpec, heads: dict[str, str]) -> str | None:
    """The commit git says `spec` should run: its branch's head (None: not there yet)."""
    return heads.get(spec.branch) if spec.branch else None


def decide(spec: EnvironmentSpec, progress: EnvProgress, head: str | None) -> Decision:
    if spec.branch is None:
        return "promotion"  # fed by `promote`, not by a branch
    if progress.suspended:
        return "suspended"
    if head is None:
        return "no_branch"
    if head == progress.deployed:
        return "in_sync"
    if head == progress.failed:
        return "failed"
    return "sync"
