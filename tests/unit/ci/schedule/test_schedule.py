"""Data-driven cases for the pipeline schedule (cases.yaml): jobs, their results, and the
rounds in which they start, plus final job and pipeline statuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.ci.select.schedule import Schedule
from conveyor.model.pipeline import JobRun, NeedSpec

CASES = yaml.safe_load((Path(__file__).parent / "cases.yaml").read_text())


def job(spec: dict[str, Any]) -> JobRun:
    needs = spec.get("needs")
    return JobRun(
        name=spec["name"],
        spec=spec["name"],
        stage=spec.get("stage", "test"),
        when=spec.get("when", "on_success"),
        start_in=spec.get("start_in"),
        allow_failure=spec.get("allow_failure", False),
        needs=None if needs is None else tuple(NeedSpec(job=n) for n in needs),
    )


def simulate(case: dict[str, Any]) -> tuple[list[list[str]], dict[str, str], str]:
    stages = case.get("stages", ["build", "test", "deploy"])
    results: dict[str, str] = case.get("results", {})
    sched = Schedule(
        jobs=[job(j) for j in case["jobs"]],
        stages=stages,
        play=case.get("play", []),
        groups=case.get("groups", {}),
    )
    rounds: list[list[str]] = []
    now = 0.0
    for _ in range(50):
        batch = [j.name for j in sched.ready(now)]
        if not batch:
            wake = sched.next_wakeup()
            if wake is None:
                break
            now = wake
            continue
        rounds.append(batch)
        for name in batch:
            sched.start(name)
        for name in batch:
            st = results.get(name, "success")
            allowed = sched.states[name].job.allow_failure
            sched.finish(name, "failed" if st == "failed" else "success", allowed_failure=allowed)
    return rounds, {n: s.status for n, s in sched.states.items()}, sched.pipeline_status()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_schedule(case: dict[str, Any]) -> None:
    rounds, statuses, pipeline = simulate(case)
    assert rounds == case["rounds"]
    for name, want in case.get("statuses", {}).items():
        assert statuses[name] == want, name
    assert pipeline == case["pipeline"]


def test_resource_group_serialises_jobs_started_together() -> None:
    sched = Schedule(
        jobs=[job({"name": "a", "needs": []}), job({"name": "b", "needs": []})],
        stages=["test"],
        groups={"a": "prod", "b": "prod"},
    )
    assert [j.name for j in sched.ready(0.0)] == ["a"]
    sched.start("a")
    assert sched.ready(0.0, busy_groups={"prod"}) == []
    sched.finish("a", "success")
    assert [j.name for j in sched.ready(0.0)] == ["b"]
