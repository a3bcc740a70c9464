"""`conveyor.app.ci` over recorded pipelines: the `--json` shapes scripts read (docs/ci.md),
key for key and in order, and the errors a user meets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from conveyor.app import ci
from conveyor.ci.run.prepare import ci_store
from conveyor.errors import ConveyorError
from conveyor.store.db import Store
from conveyor.store.pipelines import TestFailure

T0 = 1_700_000_000.0


def dumped(view: BaseModel) -> str:
    """What `--json` prints (key order included)."""
    return json.dumps(view.model_dump(mode="json"))


def record(store: Store) -> None:
    """Pipeline 1: a build with artifacts and tests, a review deploy, a manual stop job;
    pipeline 2: the stop job ran."""
    p1 = store.pipelines.create("main", "a" * 40, "push", ".gitlab-ci.yml", "shell")
    build = store.jobs.create(p1, "build", "build", "running", "on_success", False)
    store.jobs.update(
        build,
        status="success",
        started_at=T0,
        finished_at=T0 + 1.23456,
        exit_code=0,
        executor="shell",
        log_path=None,
        coverage=87.5,
        tests={"total": 3, "passed": 2, "failed": 1, "errors": 0, "skipped": 0},
    )
    store.artifacts.record(build, 2, 1234)  # no manifest on disk: as if expired and removed
    store.jobs.record_test_failures(
        build,
        [
            TestFailure(
                status="failed", name="t", classname="c", suite="s", file="r.xml", message="m"
            )
        ],
    )
    deploy = store.jobs.create(p1, "deploy", "deploy", "running", "on_success", False)
    store.jobs.update(
        deploy,
        status="success",
        started_at=T0 + 2,
        finished_at=T0 + 3,
        exit_code=0,
        executor="shell",
        environment={
            "name": "review/main",
            "url": "http://127.0.0.1:8000/",
            "action": "start",
            "on_stop": "stop",
        },
    )
    store.jobs.create(p1, "stop", "deploy", "manual", "manual", True)
    store.pipelines.finish(
        p1, "manual", {"total": 3, "passed": 2, "failed": 1, "errors": 0, "skipped": 0}, 87.5
    )
    store.db.execute(
        "UPDATE pipelines SET started_at = ?, finished_at = ? WHERE id = ?",
        (T0, T0 + 3.00049, p1),
    )
    p2 = store.pipelines.create("main", "a" * 40, "web", ".gitlab-ci.yml", "shell")
    stop = store.jobs.create(p2, "stop", "deploy", "running", "on_success", True)
    store.jobs.update(
        stop,
        status="success",
        started_at=T0 + 10,
        finished_at=T0 + 11,
        exit_code=0,
        environment={"name": "review/main", "url": None, "action": "stop", "on_stop": None},
    )
    store.pipelines.finish(p2, "success", {}, None)


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    f = tmp_path / ".gitlab-ci.yml"
    f.write_text("build:\n  script: [echo]\n")
    store = ci_store(tmp_path)
    record(store)
    store.close()
    return f


def test_show_json_is_the_documented_shape(pipeline_file: Path) -> None:
    view = ci.show(pipeline_file, 1)
    job = {
        "id": 1,
        "name": "build",
        "stage": "build",
        "status": "success",
        "when": "on_success",
        "allow_failure": False,
        "attempt": 1,
        "retry_of": None,
        "duration": 1.235,
        "exit_code": 0,
        "failure_reason": None,
        "executor": "shell",
        "coverage": 87.5,
        "tests": {"total": 3, "passed": 2, "failed": 1, "errors": 0, "skipped": 0},
        "artifacts": {
            "files": 2,
            "bytes": 1234,
            "entries": [],
            "expire_at": None,
            "expired": True,
        },
        "environment": None,
        "test_failures": [
            {
                "status": "failed",
                "name": "t",
                "classname": "c",
                "suite": "s",
                "file": "r.xml",
                "message": "m",
            }
        ],
        "downstream": None,
    }
    expected = {
        "version": 1,
        "id": 1,
        "ref": "main",
        "sha": "a" * 40,
        "source": "push",
        "status": "manual",
        "started_at": T0,
        "finished_at": T0 + 3.00049,
        "duration": 3.0,
        "executor": "shell",
        "tests": {"total": 3, "passed": 2, "failed": 1, "errors": 0, "skipped": 0},
        "coverage": 87.5,
        "parent_pipeline_id": None,
        "trigger_job_id": None,
        "auto_cancel_on_new_commit": "conservative",
        "auto_cancel_on_job_failure": "none",
        "jobs": [job],
    }
    out = json.loads(dumped(view))
    assert list(out) == list(expected)
    assert list(out["jobs"][0]) == list(job)
    assert out["jobs"][0] == job
    assert out["jobs"][1]["environment"] == {
        "name": "review/main",
        "url": "http://127.0.0.1:8000/",
        "action": "start",
        "on_stop": "stop",
    }
    assert out["jobs"][2]["duration"] is None and out["jobs"][2]["status"] == "manual"
    assert {k: v for k, v in out.items() if k != "jobs"} == {
        k: v for k, v in expected.items() if k != "jobs"
    }
    # the JSON rounds to the millisecond; the tables show what was measured
    assert view.jobs[0].duration == pytest.approx(1.23456)


def test_history_is_newest_first_with_the_documented_keys(pipeline_file: Path) -> None:
    out = json.loads(dumped(ci.history(pipeline_file, limit=20)))
    assert list(out) == ["version", "pipelines"]
    assert [p["id"] for p in out["pipelines"]] == [2, 1]
    assert out["pipelines"][1] == {
        "id": 1,
        "ref": "main",
        "sha": "a" * 40,
        "status": "manual",
        "started_at": T0,
        "duration": 3.0,
        "tests": {"total": 3, "passed": 2, "failed": 1, "errors": 0, "skipped": 0},
    }
    assert [p["id"] for p in ci.history(pipeline_file, limit=1).model_dump()["pipelines"]] == [2]


def test_environments_follow_the_latest_job_that_deployed_or_stopped_them(
    pipeline_file: Path,
) -> None:
    out = json.loads(dumped(ci.environments(pipeline_file)))
    assert out == {
        "version": 1,
        "environments": [
            {
                "name": "review/main",
                "state": "stopped",
                "url": None,
                "job": "stop",
                "job_id": 4,
                "pipeline": 2,
                "on_stop": None,
            }
        ],
    }


def test_stopping_a_stopped_or_unknown_environment_is_refused(pipeline_file: Path) -> None:
    with pytest.raises(ConveyorError, match="environment 'review/main' is already stopped"):
        ci.stop(pipeline_file, "review/main", registry=False)
    with pytest.raises(ConveyorError, match="no environment 'nope' was deployed from"):
        ci.stop(pipeline_file, "nope", registry=False)


def test_missing_records_and_files_are_errors(pipeline_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConveyorError, match="no pipeline 9"):
        ci.show(pipeline_file, 9)
    with pytest.raises(ConveyorError, match="no log for job 'build'"):
        ci.logs(pipeline_file, "build")  # recorded without a log file
    with pytest.raises(ConveyorError, match="no such file"):
        ci.history(tmp_path / "nowhere" / ".gitlab-ci.yml")


def test_logs_by_name_or_id(pipeline_file: Path, tmp_path: Path) -> None:
    log = tmp_path / "deploy.log"
    log.write_text("deploying\n")
    store = ci_store(pipeline_file.parent)
    store.jobs.update(2, log_path=str(log))
    store.close()
    assert ci.logs(pipeline_file, "deploy").text == "deploying\n"
    assert ci.logs(pipeline_file, "2", pipeline=1).name == "deploy"
    log.unlink()
    with pytest.raises(ConveyorError, match=r"deploy\.log"):
        ci.logs(pipeline_file, "deploy")
