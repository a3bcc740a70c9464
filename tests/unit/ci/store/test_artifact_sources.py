"""Whose artifacts a job downloads (GitLab's Ci::BuildDependencies), `dependencies` included."""

from __future__ import annotations

import pytest

from conveyor.ci.run.handoff import artifact_sources
from conveyor.model.pipeline import JobRun, NeedSpec

STAGES = {"compile": "build", "lint": "build", "generate": "test", "job": "test"}
ORDER = {".pre": 0, "build": 1, "test": 2, ".post": 3}


def job(
    dependencies: tuple[str, ...] | None = None, needs: tuple[NeedSpec, ...] | None = None
) -> JobRun:
    return JobRun(
        name="job",
        spec="job",
        stage="test",
        when="on_success",
        dependencies=dependencies,
        needs=needs,
    )


@pytest.mark.parametrize(
    ("dependencies", "needs", "expected"),
    [
        (None, None, ["compile", "lint"]),  # every earlier stage
        ((), None, []),  # dependencies: [] downloads nothing
        (("lint",), None, ["lint"]),
        # A same-stage job is accepted in `dependencies` but the job does not wait for it:
        # GitLab hands over nothing from it, even once it has finished.
        (("lint", "generate"), None, ["lint"]),
        (None, (NeedSpec(job="generate"), NeedSpec(job="lint", artifacts=False)), ["generate"]),
        (("generate",), (NeedSpec(job="generate"),), ["generate"]),
        # `needs: {artifacts: false}` wins over `dependencies` naming the same job.
        (("lint",), (NeedSpec(job="lint", artifacts=False),), []),
    ],
)
def test_sources(
    dependencies: tuple[str, ...] | None,
    needs: tuple[NeedSpec, ...] | None,
    expected: list[str],
) -> None:
    assert artifact_sources(job(dependencies, needs), STAGES, ORDER) == expected
