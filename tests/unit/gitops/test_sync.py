"""What the controller does next for an environment (gitops.sync.decide), for branch-fed and
promoted environments, and what it remembers of approvals and its own pin commits."""

from __future__ import annotations

import json

import pytest

from conveyor.gitops.sync import (
    MAX_APPROVALS,
    MAX_PINS,
    Approval,
    EnvProgress,
    decide,
    newest_tagged,
)
from conveyor.model.environments import EnvironmentSpec

STAGING = EnvironmentSpec(name="staging", branch="main")
PRODUCTION = EnvironmentSpec(name="production", promote_from="staging")
A, B, C = "a" * 40, "b" * 40, "c" * 40


@pytest.mark.parametrize(
    ("spec", "progress", "desired", "expected"),
    [
        (STAGING, EnvProgress(), None, "no_branch"),
        (STAGING, EnvProgress(), A, "sync"),
        (STAGING, EnvProgress(deployed=A), A, "in_sync"),
        (STAGING, EnvProgress(deployed=A, failed=B), B, "failed"),
        (STAGING, EnvProgress(deployed=A, failed=B), C, "sync"),  # the branch moved on
        (STAGING, EnvProgress(deployed=A, suspended=True), B, "suspended"),
        # a pin names an older commit than what serves: brought in like any other
        (STAGING, EnvProgress(deployed=B), A, "sync"),
        (PRODUCTION, EnvProgress(), None, "promotion"),  # nothing promoted yet
        (PRODUCTION, EnvProgress(desired=A, syncing=A), A, "sync"),  # cut short by a crash
        (PRODUCTION, EnvProgress(deployed=A), A, "in_sync"),
        (PRODUCTION, EnvProgress(deployed=A, failed=B), B, "failed"),
    ],
)
def test_decide(
    spec: EnvironmentSpec, progress: EnvProgress, desired: str | None, expected: str
) -> None:
    assert decide(spec, progress, desired) == expected


def test_an_approval_is_for_one_release_built_from_one_commit() -> None:
    progress = EnvProgress().with_approval(Approval(release=3, commit=A, by="ann", at=1.0))
    assert progress.approved(3, A) is not None
    assert progress.approved(4, A) is None
    # release numbers of a source project whose data was wiped start again: not the same
    assert progress.approved(3, B) is None


def test_the_newest_approval_is_the_one_reported() -> None:
    progress = EnvProgress()
    for who in ("ann", "bob"):
        progress = progress.with_approval(Approval(release=3, commit=A, by=who, at=1.0))
    found = progress.approved(3, A)
    assert found is not None and found.by == "bob"


def test_what_is_remembered_stays_bounded() -> None:
    progress = EnvProgress()
    for n in range(MAX_APPROVALS + 5):
        progress = progress.with_approval(Approval(release=n, commit=None, by="x", at=0.0))
    for n in range(MAX_PINS + 5):
        progress = progress.with_pin_commit(f"{n:040x}")
    assert len(progress.approvals) == MAX_APPROVALS
    assert progress.approvals[-1].release == MAX_APPROVALS + 4
    assert len(progress.pin_commits) == MAX_PINS
    assert progress.pin_commits[-1] == f"{MAX_PINS + 4:040x}"


def test_progress_written_before_approvals_existed_still_reads() -> None:
    old = json.dumps({"desired": A, "deployed": A, "failed": None, "reason": ""})
    progress = EnvProgress.model_validate_json(old)
    assert progress.approvals == () and progress.pin_commits == () and progress.promotion is None


def test_newest_tagged_takes_the_first_commit_of_the_history_with_a_matching_tag() -> None:
    spec = EnvironmentSpec(name="production", branch="main", tag_pattern="v*")
    history = ["c3", "c2", "c1"]  # newest first
    assert newest_tagged(spec, history, {"v1": "c1", "docs": "c3"}) == "c1"
    assert newest_tagged(spec, history, {"v1": "c1", "v2": "c2"}) == "c2"
    assert newest_tagged(spec, history, {"docs": "c3"}) is None
    assert newest_tagged(spec, history, {"v9": "elsewhere"}) is None  # not on the branch
