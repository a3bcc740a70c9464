"""The releases and rollouts of a `target: kubernetes` environment, as the API lists them
for a Docker environment (`/environments/{env}/releases`, `/rollouts`), read from its deploy
repository's history (gitops.kube_releases.History). Pure.

A release is a release commit still in force or not (numbered as its trailer says); a
rollout is each commit Conveyor made there: a delivery (kind `deploy`) or a revert (kind
`rollback`). Its status is the commit's: `succeeded` (pushed) unless Flux said it failed;
Flux's own word (committed, reconciled, failed) is in `flux`.

    releases = kube_releases(history, times, flux_of)
    rollouts = kube_rollouts(history, times, flux_of)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from conveyor.app.views import ReleaseImage, ReleaseView, RolloutView
from conveyor.gitops.kube_releases import DeliveryCommit, History

# deploy commit -> "reconciled" / "failed" (Flux's newest event naming it), None: none yet
FluxOf = Callable[[str], str | None]
COMMITTED = "committed"


def kube_releases(
    history: History, times: Mapping[str, float], flux_of: FluxOf, limit: int = 50
) -> list[ReleaseView]:
    """Every release commit of the history (reverted ones too: they are releases that were
    made), newest first; a revert is not a release."""
    return [
        ReleaseView(
            number=d.release,
            created_at=times.get(d.commit, 0.0),
            commit=d.source,
            services={s: ReleaseImage(image=ref, spec_hash="") for s, ref in d.images},
            deploy_commit=d.commit,
            flux=flux_of(d.commit) or COMMITTED,
        )
        for d in history.commits
        if not d.reverts
    ][:limit]


def kube_rollouts(
    history: History, times: Mapping[str, float], flux_of: FluxOf, limit: int = 50
) -> list[RolloutView]:
    """Each delivery and revert, newest first, numbered from the oldest (1, 2, …); `from`
    is the release in force before it."""
    oldest_first = list(reversed(history.commits))
    rows: list[RolloutView] = []
    before: int | None = None
    for index, d in enumerate(oldest_first, start=1):
        flux = flux_of(d.commit)
        when = times.get(d.commit, 0.0)
        rows.append(
            RolloutView(
                id=index,
                kind="rollback" if d.reverts else "deploy",
                from_release=before,
                to_release=d.release,
                status="failed" if flux == "failed" else "succeeded",
                started_at=when,
                finished_at=when,
                duration=None,
                actor=_actor(d),
                reason=d.title,
                error=None,
                deploy_commit=d.commit,
                flux=flux or COMMITTED,
            )
        )
        before = d.release
    return list(reversed(rows))[:limit]


def _actor(d: DeliveryCommit) -> str:
    # Deliveries are the server's; a revert's message names who asked for it.
    return d.by or "server"
