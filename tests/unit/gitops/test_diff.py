"""How one service's differences between git and the running release are worded
(gitops.diff)."""

from __future__ import annotations

from conveyor.gitops.diff import differences, spec_fields
from conveyor.model.stack import Service

WEB = Service(name="web", image="shop:1", environment={"V": "1"}, replicas=2)


def test_the_same_service_has_no_difference() -> None:
    assert spec_fields(WEB, WEB) == []
    found = differences(
        WEB,
        WEB,
        desired_image="shop:1",
        running_image="shop:1",
        image_differs=False,
        running_replicas=2,
    )
    assert found == []


def test_each_kind_of_difference_is_one_phrase() -> None:
    desired = WEB.model_copy(
        update={"image": "shop:2", "environment": {"V": "2"}, "replicas": 3, "user": "app"}
    )
    found = differences(
        desired,
        WEB,
        desired_image="shop:2",
        running_image="shop:1",
        image_differs=True,
        running_replicas=2,
        stale_replicas=1,
    )
    assert found == [
        "image shop:1 → shop:2",
        "spec: environment, user",
        "replicas 2 → 3",
        "1 replica(s) run an older spec than the serving release",
    ]


def test_replicas_compare_what_runs_now_with_git() -> None:
    # one of two replicas died: the release is right, the running count is not
    found = differences(
        WEB,
        WEB,
        desired_image="shop:1",
        running_image="shop:1",
        image_differs=False,
        running_replicas=1,
    )
    assert found == ["replicas 1 → 2"]


def test_a_global_service_on_a_fleet_compares_with_its_hosts() -> None:
    """The file says 1 (one per host); on three hosts the engine wants three."""
    glob = WEB.model_copy(update={"replicas": 1})

    def found(running: int) -> list[str]:
        return differences(
            glob,
            glob,
            desired_image="shop:1",
            running_image="shop:1",
            image_differs=False,
            running_replicas=running,
            desired_replicas=3,
        )

    assert found(3) == []
    assert found(2) == ["replicas 2 → 3"]


def test_a_service_only_on_one_side() -> None:
    gone = differences(
        None,
        WEB,
        desired_image=None,
        running_image="shop:1",
        image_differs=False,
        running_replicas=2,
    )
    assert gone == ["not in git: runs here only"]
    new = differences(
        WEB,
        None,
        desired_image="shop:1",
        running_image=None,
        image_differs=False,
        running_replicas=0,
    )
    assert new == ["not released here yet", "replicas 0 → 2"]
