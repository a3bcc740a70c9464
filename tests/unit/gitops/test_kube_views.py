"""A kubernetes environment's releases and rollouts as the API lists them, from its deploy
repository's history (pure): reverted releases stay listed, a revert is a rollback rollout
with the person who asked, Flux's word per deploy commit."""

from __future__ import annotations

from conveyor.app.kube_views import kube_releases, kube_rollouts
from conveyor.gitops.kube_releases import History, parse, release_message, rollback_message

S1, S2 = "a" * 40, "b" * 40


def _history() -> History:
    one = ("1" * 40, release_message("staging", 1, S1, "shop", {"web": "r/web:1@sha256:x"}))
    two = ("2" * 40, release_message("staging", 2, S2, "shop", {"web": "r/web:2@sha256:y"}))
    d1, d2 = parse(*one), parse(*two)
    assert d1 is not None and d2 is not None
    back = ("3" * 40, rollback_message("staging", [d2], d1, "ann"))
    return History.of("staging", [back, two, one])


def test_releases_name_their_deploy_commit_images_and_flux_word() -> None:
    times = {"1" * 40: 100.0, "2" * 40: 200.0, "3" * 40: 300.0}
    words = {"1" * 40: "reconciled", "2" * 40: "failed"}

    releases = kube_releases(_history(), times, words.get)

    assert [(r.number, r.commit, r.deploy_commit, r.flux, r.created_at) for r in releases] == [
        (2, S2, "2" * 40, "failed", 200.0),
        (1, S1, "1" * 40, "reconciled", 100.0),
    ]
    assert releases[1].services["web"].image == "r/web:1@sha256:x"


def test_rollouts_are_deliveries_and_reverts_newest_first() -> None:
    words = {"2" * 40: "failed"}

    rollouts = kube_rollouts(_history(), {}, words.get)

    assert [
        (r.id, r.kind, r.from_release, r.to_release, r.status, r.actor, r.flux) for r in rollouts
    ] == [
        (3, "rollback", 2, 1, "succeeded", "ann", "committed"),
        (2, "deploy", 1, 2, "failed", "server", "failed"),
        (1, "deploy", None, 1, "succeeded", "server", "committed"),
    ]
    assert kube_rollouts(History(()), {}, words.get) == []
