"""What the server does next for one environment, decided from git and what it remembers
(pure). The controller (app/controller.py) fetches, asks `decide`, and carries the answer out
with the CI engine and the deploy engine.

Latest commit wins: only the head of the environment's branch is considered, so commits pushed
while an older one was in its pipeline are skipped; the older one's pipeline is auto-canceled
as its `workflow:auto_cancel` says, and it is not rolled out (`Supersession`,
app/superseding.py). A commit whose pipeline or rollout failed is not tried again until the
branch moves (a push, a revert): the previous release keeps serving meanwhile.

A pin file on the branch's head (`.conveyor/pins/<env>.json`, written by a rollback) holds the
environment at the commit it names instead of the head, until a push deletes or changes it. With
`tag_pattern`, the branch's newest commit that carries a matching tag stands for its head
(`newest_tagged`): untagged commits on top of it wait for their tag. An
environment fed by promotion has no branch: its desired commit is the one last promoted (or
rolled back to), which the controller keeps in `EnvProgress.desired`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from conveyor.model.environments import EnvironmentSpec
from conveyor.model.stack import Frozen

Decision = Literal["sync", "in_sync", "failed", "suspended", "no_branch", "promotion"]


MAX_APPROVALS = 50  # kept per environment, newest last
MAX_PINS = 20  # pin commits this server pushed, remembered per environment


class Approval(Frozen):
    """Someone allowed a release of the source environment to be promoted into this one."""

    release: int  # the release's number in the source environment (`promote_from`)
    commit: str | None  # the commit that release was built from
    by: str
    at: float


class Promotion(Frozen):
    """What was last promoted into an environment: a release of its source environment, whose
    images it runs (kept so a promotion a crash cut short is finished with the same images)."""

    source: str  # the environment promoted from
    release: int  # the release there
    commit: str
    by: str
    at: float


class Supersession(Frozen):
    """A newer commit arrived on the branch while the pipeline of `commit` ran: that commit is
    not deployed (latest commit wins); what became of its pipeline is `action` (GitLab's
    auto-cancel: `canceled`, `interruptible` jobs canceled, or `kept` to the end)."""

    commit: str
    by: str  # the newer commit
    pipeline: int
    action: Literal["canceled", "interruptible", "kept"]
    message: str  # what people were told
    at: float


class EnvProgress(Frozen):
    """What the controller remembers of an environment (kept in the server's data directory,
    so a restarted server neither redeploys what serves nor retries what failed)."""

    desired: str | None = None  # the branch's head when last fetched
    deployed: str | None = None  # the commit serving
    failed: str | None = None  # the newest commit that failed (pipeline, rollout, signature)
    reason: str = ""  # why it failed
    suspended: bool = False
    syncing: str | None = None  # the commit being brought in (a crash leaves it set)
    pinned: str | None = None  # a pin file on the branch holds the environment at this commit
    pin_commits: tuple[str, ...] = ()  # commits this server pushed to pin it (newest last)
    approvals: tuple[Approval, ...] = ()  # releases of `promote_from` approved, newest last
    promotion: Promotion | None = None  # the last promotion into the environment
    waiting: str = ""  # what an automatic promotion into it waits for (unmet gates)
    superseded: Supersession | None = None  # the last commit a newer one superseded mid-pipeline
    # target: kubernetes: the deploy repository's commit holding what `deployed` renders,
    # and its release number there (app.kube_delivery)
    delivered: str | None = None
    delivered_release: int | None = None
    # ... and the image references it names (service -> repo:tag@sha256:…): a promotion
    # from this environment delivers these very images
    delivered_images: dict[str, str] = Field(default_factory=dict)

    def approved(self, release: int, commit: str | None) -> Approval | None:
        """The newest approval of `release` (built from `commit`) of the source environment."""
        for a in reversed(self.approvals):
            if a.release == release and (a.commit is None or a.commit == commit):
                return a
        return None

    def with_approval(self, approval: Approval) -> EnvProgress:
        kept = (*self.approvals, approval)[-MAX_APPROVALS:]
        return self.model_copy(update={"approvals": kept})

    def with_pin_commit(self, sha: str) -> EnvProgress:
        kept = (*self.pin_commits, sha)[-MAX_PINS:]
        return self.model_copy(update={"pin_commits": kept})


def head_of(spec: EnvironmentSpec, heads: dict[str, str]) -> str | None:
    """The commit git says `spec` should run: its branch's head (None: not there yet)."""
    return heads.get(spec.branch) if spec.branch else None


def newest_tagged(spec: EnvironmentSpec, history: list[str], tags: dict[str, str]) -> str | None:
    """For an environment with `tag_pattern`: the newest commit of `history` (its branch's
    head first) that carries a matching tag; None when none does (nothing to deploy yet)."""
    tagged = {sha for tag, sha in tags.items() if spec.accepts_tag(tag)}
    return next((sha for sha in history if sha in tagged), None)


def decide(spec: EnvironmentSpec, progress: EnvProgress, desired: str | None) -> Decision:
    """`desired` is, for a branch-fed environment, its head or the commit the head's pin
    names; for one fed by promotion, what was promoted (`progress.desired`)."""
    if progress.suspended:
        return "suspended"
    if desired is None:
        # A branch not pushed yet, or nothing promoted yet.
        return "no_branch" if spec.branch is not None else "promotion"
    if desired == progress.deployed:
        return "in_sync"
    if desired == progress.failed:
        return "failed"
    return "sync"
