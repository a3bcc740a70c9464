"""The `.gitlab-ci.yml` fixture corpus: each `tests/ci_fixtures/<family>-<name>/` directory is a
project whose pipeline Conveyor must run with GitLab's semantics, and whose `expect.yaml` says
what GitLab would do (Woodpecker's e2e layout). See `tests/ci_fixtures/README.md` for the keys.

Every fixture is copied into a temporary directory, made a git repository (one commit, then the
fixture's `setup` commands), and run in-process with `conveyor.testing.ci.run_pipeline`: with
the shell executor unless it says `executor: docker`; the fixtures in DOCKER_REPRESENTATIVE run
a second time through the docker executor.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from conveyor.ci.load.components import Catalog
from conveyor.ci.run.artifacts import artifact_store
from conveyor.ci.run.prepare import ci_state_dir, prepare
from conveyor.errors import ConveyorError
from conveyor.testing.ci import Run, run_pipeline

FIXTURES = Path(__file__).resolve().parents[2] / "ci_fixtures"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Fixture Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Fixture Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}

# Shell fixtures that also run through the docker executor (besides `executor: docker` ones):
# they must not rely on host paths such as $SCRATCH.
DOCKER_REPRESENTATIVE: tuple[str, ...] = (
    "stages-order",
    "needs-artifacts-false",
    "artifacts-stages",
    "artifacts-exclude",
    "reports-dotenv",
    "reports-junit",
    "variables-precedence",
    "variables-predefined",
    "parallel-matrix",
    "after-script-on-failure",
    "script-set-e",
    "script-pipefail",
    "masking-literal",
    "cache-fallback-keys",
    "timeout-kill",
    "variables-git-strategy-none",
    "when-manual-played",
    "child-dynamic",
)


class JobExpect(BaseModel):
    """What one job's result must say (unset fields are not checked)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exit_code: int | None = None
    failure_reason: str | None = None
    allowed_failure: bool | None = None
    coverage: float | None = None
    tests: dict[str, int] | None = None


class Expect(BaseModel):
    """The schema of `expect.yaml`: unknown keys are errors, so a typo cannot pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    # how to run
    executor: Literal["shell", "docker"] = "shell"
    images: list[str] = []  # docker images the pipeline needs (`conveyor bootstrap` makes them)
    variables: dict[str, str] = {}
    environment: dict[str, str] = {}  # exported in the caller's shell, over the test's own
    play: list[str] = []
    ref: str | None = None
    source: str = "push"
    only: list[str] = []
    changed_files: list[str] | None = None
    inputs: dict[str, Any] = {}  # pipeline inputs (`conveyor ci run --input`)
    component_catalogs: list[str] = []  # `[GROUP/PROJECT=]PATH`, relative to the project
    setup: list[str] = []  # shell commands run in the repository after the first commit
    files: dict[str, str] = {}  # written after the commit (untracked), e.g. project variables
    # GitLab project path -> a directory of the fixture made a repository of its own
    # (`--include-project`): for include:project and multi-project triggers
    projects: dict[str, str] = {}
    runs: int = 1  # run the pipeline this many times; checks apply to the last run
    xfail: str | None = None
    # what must hold
    no_pipeline: bool = False  # GitLab creates no pipeline (workflow:rules, nothing to run)
    no_pipeline_reason: str = ""  # a substring of why
    statuses: dict[str, str] = {}  # every job of the pipeline; "absent" for jobs not in it
    pipeline: str | None = None
    order: list[tuple[str, str]] = []  # (before, after): `after` starts once `before` finished
    no_overlap: list[tuple[str, str]] = []  # the two jobs never run at the same time
    gap: list[tuple[str, str, float]] = []  # (before, after, s): `after` starts s after
    output: dict[str, list[str]] = {}  # substrings of the job's log (ANSI codes stripped)
    absent_output: dict[str, list[str]] = {}
    first_output: dict[str, list[str]] = {}  # `output` for the first of several runs
    never_stored: list[str] = []  # in no log, no log file, not in the state database
    attempts: dict[str, list[str]] = {}  # job -> status of each attempt, in order
    results: dict[str, JobExpect] = {}
    pipeline_tests: dict[str, int] = {}
    # job -> its recorded failed JUnit cases, each "STATUS [CLASSNAME.]NAME: MESSAGE"
    test_failures: dict[str, list[str]] = {}
    artifacts: dict[str, list[str]] = {}  # job -> files among the artifacts it kept


def _fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "expect.yaml").is_file())


def _load(name: str) -> Expect:
    return Expect.model_validate(yaml.safe_load((FIXTURES / name / "expect.yaml").read_text()))


def _git(project: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Fixture Author", "-c", "user.email=author@example.com", *args],
        cwd=project,
        check=True,
        capture_output=True,
        env={**os.environ, **GIT_ENV},
    )


def _project(name: str, expect: Expect, tmp_path: Path) -> Path:
    """The fixture as a fresh git repository on branch `main`, set up as expect.yaml says."""
    project = tmp_path / name
    others = set(expect.projects.values())
    shutil.copytree(FIXTURES / name, project, ignore=shutil.ignore_patterns("expect.yaml", *others))
    for directory in others:
        repo = tmp_path / "projects" / directory
        shutil.copytree(FIXTURES / name / directory, repo)
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"fixture {name}/{directory}")
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", f"fixture {name}")
    for command in expect.setup:
        subprocess.run(
            command,
            shell=True,  # the fixture's own setup commands
            cwd=project,
            check=True,
            capture_output=True,
            env={**os.environ, **GIT_ENV},
        )
    for rel, text in expect.files.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return project


def _catalogs(project: Path, expect: Expect) -> list[Catalog]:
    out = []
    for given in expect.component_catalogs:
        name, _, path = given.rpartition("=")
        out.append(Catalog((project / path).resolve(), name or None))
    return out


def _log(run: Run, job: str) -> str:
    return ANSI.sub("", run.collected.output.get(job, ""))


def _interval(run: Run, job: str) -> tuple[float, float]:
    starts = [e.t for e in run.collected.events if e.kind == "start" and e.job == job]
    ends = [e.t for e in run.collected.events if e.kind == "finish" and e.job == job]
    assert starts and ends, f"{job} did not run"
    return min(starts), max(ends)


def _check_output(run: Run, wanted: dict[str, list[str]], absent: dict[str, list[str]]) -> None:
    for job, needles in wanted.items():
        log = _log(run, job)
        for needle in needles:
            assert needle in log, f"{job}: {needle!r} not in its log:\n{log}"
    for job, needles in absent.items():
        log = _log(run, job)
        for needle in needles:
            assert needle not in log, f"{job}: {needle!r} must not be in its log:\n{log}"


def _check(run: Run, expect: Expect, project: Path) -> None:
    statuses = run.statuses()
    logs = "\n".join(f"--- {job}\n{_log(run, job)}" for job in run.collected.output)
    want = {job: st for job, st in expect.statuses.items() if st != "absent"}
    absent = [job for job, st in expect.statuses.items() if st == "absent"]
    assert statuses == want, f"statuses {statuses} != expected {want}\n{logs}"
    assert not [j for j in absent if j in statuses]
    if expect.pipeline is not None:
        assert run.result.status == expect.pipeline, logs
    for before, after in expect.order:
        assert run.collected.started_before_finished(before, after), (
            f"{after} started before {before} finished"
        )
    for a, b in expect.no_overlap:
        (a0, a1), (b0, b1) = _interval(run, a), _interval(run, b)
        assert a1 <= b0 or b1 <= a0, f"{a} and {b} overlapped"
    for before, after, seconds in expect.gap:
        assert _interval(run, after)[0] - _interval(run, before)[1] >= seconds * 0.95
    _check_output(run, expect.output, expect.absent_output)
    for job, wanted_attempts in expect.attempts.items():
        rows = sorted((r for r in run.jobs if r.name == job), key=lambda r: r.attempt)
        assert [r.status for r in rows] == wanted_attempts, f"{job} attempts: {rows}"
        assert [r.attempt for r in rows] == list(range(1, len(rows) + 1))
        assert [r.retry_of for r in rows] == [None, *(r.id for r in rows[:-1])]
    results = run.result.all_jobs()
    for job, res in expect.results.items():
        got = results[job]
        if res.exit_code is not None:
            assert got.exit_code == res.exit_code, f"{job}: {got}"
        if res.failure_reason is not None:
            assert got.failure_reason == res.failure_reason, f"{job}: {got}"
        if res.allowed_failure is not None:
            assert got.allowed_failure == res.allowed_failure, f"{job}: {got}"
        if res.coverage is not None:
            assert got.coverage == pytest.approx(res.coverage), f"{job}: {got}"
        if res.tests is not None:
            assert got.tests is not None, f"{job}: no test report"
            counts = {k: getattr(got.tests, k) for k in res.tests}
            assert counts == res.tests, f"{job}: {got.tests}"
    for job, wanted_failures in expect.test_failures.items():
        recorded = [
            f"{f.status} {f.classname + '.' if f.classname else ''}{f.name}: {f.message}"
            for f in run.test_failures.get(job, [])
        ]
        assert recorded == wanted_failures, f"{job}: {recorded}"
    for job, wanted_paths in expect.artifacts.items():
        job_id = next(r.id for r in reversed(run.jobs) if r.name == job)
        manifest = artifact_store(ci_state_dir(project)).get(str(job_id))
        assert manifest is not None, f"{job} kept no artifacts"
        kept = {p for p, e in manifest.snapshot.entries.items() if e.kind == "file"}
        assert set(wanted_paths) <= kept, f"{job} kept {sorted(kept)}"
    for key, value in expect.pipeline_tests.items():
        assert run.result.tests.get(key) == value, run.result.tests
    if expect.never_stored:
        state = ci_state_dir(project)
        stored = [p for p in (state / "logs").rglob("*") if p.is_file()]
        stored += [p for p in (project / ".conveyor").rglob("state.db*") if p.is_file()]
        for secret in expect.never_stored:
            assert secret not in logs
            for path in stored:
                assert secret.encode() not in path.read_bytes(), f"{secret!r} stored in {path}"


def _check_no_pipeline(project: Path, expect: Expect) -> None:
    """GitLab creates no pipeline: the configuration is refused for it, or nothing runs."""
    try:
        prepared = prepare(
            project / ".gitlab-ci.yml",
            pipeline_id=1,
            cli_variables=expect.variables,
            ref=expect.ref,
            source=expect.source,
            projects={p: project.parent / "projects" / d for p, d in expect.projects.items()},
            catalogs=_catalogs(project, expect),
            inputs=expect.inputs,
        )
    except ConveyorError as e:
        reason = str(e)
    else:
        assert prepared.selection.empty_reason is not None, [
            j.name for j in prepared.selection.jobs
        ]
        reason = prepared.selection.empty_reason
    assert expect.no_pipeline_reason in reason


def _run_fixture(name: str, tmp_path: Path, executor: Literal["shell", "docker"]) -> None:
    expect = _load(name)
    if expect.xfail:
        pytest.xfail(expect.xfail)
    for image in expect.images:
        inspect = ["docker", "image", "inspect", image]
        if subprocess.run(inspect, capture_output=True, check=False).returncode != 0:
            pytest.fail(f"{image} missing: `conveyor bootstrap` builds it (`make test` runs it)")
    project = _project(name, expect, tmp_path)
    scratch = tmp_path / "scratch"  # outside the project: survives between jobs and retries
    scratch.mkdir()
    if expect.no_pipeline:
        _check_no_pipeline(project, expect)
        return
    run: Run | None = None
    for i in range(expect.runs):
        run = run_pipeline(
            project,
            executor=executor,
            variables={"SCRATCH": str(scratch), **expect.variables},
            play=expect.play,
            ref=expect.ref,
            source=expect.source,
            only=expect.only,
            changed_files=expect.changed_files,
            projects={p: tmp_path / "projects" / d for p, d in expect.projects.items()},
            catalogs=_catalogs(project, expect),
            inputs=expect.inputs,
            environ={**os.environ, **expect.environment},
        )
        if i == 0 and expect.runs > 1:
            _check_output(run, expect.first_output, {})
    assert run is not None
    _check(run, expect, project)


NAMES = _fixture_names()
SHELL = [n for n in NAMES if _load(n).executor == "shell"]
DOCKER = sorted({*DOCKER_REPRESENTATIVE, *(n for n in NAMES if _load(n).executor == "docker")})


def test_corpus_is_complete() -> None:
    """The corpus covers every keyword family, and the docker subset names real fixtures."""
    assert len(NAMES) >= 65
    assert set(DOCKER_REPRESENTATIVE) <= set(SHELL)
    assert len(DOCKER) >= 10


@pytest.mark.parametrize("name", SHELL)
def test_fixture_shell(name: str, tmp_path: Path) -> None:
    _run_fixture(name, tmp_path, "shell")


@pytest.mark.parametrize("name", DOCKER)
def test_fixture_docker(name: str, tmp_path: Path, base_image: str) -> None:
    del base_image  # the fixtures' image; the session fixture checks it is present
    _run_fixture(name, tmp_path, "docker")
