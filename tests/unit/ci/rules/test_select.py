"""Job selection (workflow:rules, rules, only/except, parallel, needs) from select_cases.yaml.

Each case writes a pipeline in a compact form close to `.gitlab-ci.yml`; `spec()` builds the
model objects the loader would produce, and the case lists the jobs GitLab would create."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.ci.run.facts import file_facts
from conveyor.ci.select.facts import FileFacts
from conveyor.ci.select.fnmatch import fnmatch
from conveyor.ci.select.rules import PipelineSelection, file_questions, select
from conveyor.errors import SelectionError
from conveyor.model.pipeline import (
    DEFAULT_STAGES,
    AutoCancelSpec,
    JobSpec,
    NeedSpec,
    OnlyExcept,
    ParallelSpec,
    PipelineSpec,
    RuleSpec,
    Variable,
    Where,
    WorkflowSpec,
)

HERE = Path(__file__).parent
CASES = yaml.safe_load((HERE / "select_cases.yaml").read_text())
GLOBS = yaml.safe_load((HERE / "glob_cases.yaml").read_text())


# --- compact YAML -> model -------------------------------------------------------------------


def variables(value: dict[str, Any] | None) -> dict[str, Variable]:
    out = {}
    for name, item in (value or {}).items():
        if isinstance(item, dict):
            out[name] = Variable(value=str(item["value"]), expand=item.get("expand", True))
        else:
            out[name] = Variable(value=str(item))
    return out


def needs(value: list[Any] | None) -> tuple[NeedSpec, ...] | None:
    if value is None:
        return None
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(NeedSpec(job=item))
        else:
            out.append(
                NeedSpec(
                    job=item["job"],
                    optional=item.get("optional", False),
                    artifacts=item.get("artifacts", True),
                    parallel_matrix=tuple(item.get("matrix", ())),
                )
            )
    return tuple(out)


def rule(value: dict[str, Any]) -> RuleSpec:
    changes = value.get("changes")
    compare_to = None
    if isinstance(changes, dict):
        compare_to = changes.get("compare_to")
        changes = changes["paths"]
    allow = value.get("allow_failure")
    return RuleSpec(
        if_=value.get("if"),
        changes=None if changes is None else tuple(changes),
        changes_compare_to=compare_to,
        exists=None if value.get("exists") is None else tuple(value["exists"]),
        when=value.get("when"),
        start_in=value.get("start_in"),
        allow_failure=allow if isinstance(allow, bool) else None,
        allow_failure_exit_codes=tuple(allow["exit_codes"]) if isinstance(allow, dict) else (),
        variables={k: str(v) for k, v in value.get("variables", {}).items()},
        needs=needs(value.get("needs")),
        interruptible=value.get("interruptible"),
        auto_cancel=AutoCancelSpec(**value["auto_cancel"]) if "auto_cancel" in value else None,
    )


def policy(value: Any) -> OnlyExcept | None:
    if value is None:
        return None
    if isinstance(value, list):
        return OnlyExcept(refs=tuple(value))
    return OnlyExcept(
        refs=tuple(value.get("refs", ())),
        variables=tuple(value.get("variables", ())),
        changes=tuple(value.get("changes", ())),
        kubernetes=value.get("kubernetes"),
    )


def parallel(value: Any) -> ParallelSpec | None:
    if value is None:
        return None
    if isinstance(value, int):
        return ParallelSpec(count=value)
    return ParallelSpec(
        matrix=tuple(
            {k: (str(v),) if not isinstance(v, list) else tuple(map(str, v)) for k, v in e.items()}
            for e in value
        )
    )


def job(name: str, value: dict[str, Any]) -> JobSpec:
    allow = value.get("allow_failure")
    inherit = value.get("inherit_variables", True)
    return JobSpec(
        name=name,
        where=Where(file=".gitlab-ci.yml"),
        stage=value.get("stage", "test"),
        script=("true",),
        variables=variables(value.get("variables")),
        rules=None if value.get("rules") is None else tuple(rule(r) for r in value["rules"]),
        only=policy(value.get("only")),
        except_=policy(value.get("except")),
        when=value.get("when", "on_success"),
        start_in=value.get("start_in"),
        allow_failure=allow if isinstance(allow, bool) else None,
        allow_failure_exit_codes=tuple(allow["exit_codes"]) if isinstance(allow, dict) else (),
        needs=needs(value.get("needs")),
        dependencies=None if value.get("dependencies") is None else tuple(value["dependencies"]),
        parallel=parallel(value.get("parallel")),
        interruptible=value.get("interruptible", False),
        inherit_variables=inherit if isinstance(inherit, bool) else tuple(inherit),
    )


def spec(case: dict[str, Any]) -> PipelineSpec:
    stages = case.get("stages")
    workflow = case.get("workflow")
    return PipelineSpec(
        file="/project/.gitlab-ci.yml",
        stages=DEFAULT_STAGES if stages is None else (".pre", *stages, ".post"),
        variables=variables(case.get("variables")),
        workflow=WorkflowSpec(
            rules=None if workflow is None else tuple(map(rule, workflow)),
            auto_cancel=AutoCancelSpec(**case.get("auto_cancel", {})),
        ),
        jobs={name: job(name, value or {}) for name, value in case["jobs"].items()},
    )


def predefined(pipeline: dict[str, Any]) -> dict[str, str]:
    """The predefined variables that matter to selection, for a branch, tag or MR pipeline."""
    out = {
        "CI_PIPELINE_SOURCE": pipeline.get("source", "push"),
        "CI_DEFAULT_BRANCH": "main",
        "CI_PROJECT_PATH": "group/project",
    }
    if "tag" in pipeline:
        out |= {"CI_COMMIT_TAG": pipeline["tag"], "CI_COMMIT_REF_NAME": pipeline["tag"]}
    elif "mr" in pipeline:
        out |= {
            "CI_PIPELINE_SOURCE": "merge_request_event",
            "CI_COMMIT_REF_NAME": pipeline["mr"],
            "CI_MERGE_REQUEST_IID": "1",
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": pipeline["mr"],
        }
    else:
        branch = pipeline.get("branch", "main")
        out |= {"CI_COMMIT_BRANCH": branch, "CI_COMMIT_REF_NAME": branch}
    return out


def run(case: dict[str, Any]) -> PipelineSelection:
    """Select as the runner does: ask `file_questions`, answer them from the case, select."""
    diffs: dict[str, list[str]] = case.get("diff", {})
    pipeline, variables = (
        spec(case),
        {**predefined(case.get("pipeline", {})), **case.get("vars", {})},
    )
    extra = case.get("pipeline_vars")
    asked = file_questions(pipeline, variables, pipeline_variables=extra)
    changed = case.get("changed")
    facts = FileFacts(
        files=tuple(case.get("files", [])) if asked.files else None,
        changed=None if changed is None else tuple(changed),
        diffs={ref: tuple(diffs[ref]) if ref in diffs else None for ref in asked.compare_to},
    )
    return select(pipeline, variables, facts, pipeline_variables=extra)


def select_here(case: dict[str, Any], project_dir: Path) -> PipelineSelection:
    """Select with the file facts gathered from a real directory."""
    pipeline, variables = spec(case), predefined({})
    return select(pipeline, variables, file_facts(project_dir, file_questions(pipeline, variables)))


# --- the cases -------------------------------------------------------------------------------


def test_there_are_many_cases() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_selection(case: dict[str, Any]) -> None:
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises(SelectionError) as raised:
            run(case)
        assert expect["error"] in str(raised.value)
        return
    got = run(case)
    assert got.workflow_ok is expect.get("workflow", True), got.workflow_reason
    if "workflow_reason" in expect:
        assert expect["workflow_reason"] in got.workflow_reason
    if "workflow_variables" in expect:
        assert got.workflow_variables == expect["workflow_variables"]
    if "auto_cancel" in expect:
        assert got.auto_cancel.model_dump() == expect["auto_cancel"]
    if "empty" in expect:
        assert got.empty_reason is not None and expect["empty"] in got.empty_reason
    expected_jobs = [j if isinstance(j, dict) else {"name": j} for j in expect.get("jobs", [])]
    assert [j.name for j in got.jobs] == [j["name"] for j in expected_jobs]
    for want, run_ in zip(expected_jobs, got.jobs, strict=True):
        check_job(want, run_.model_dump())
    reasons = {d.job: d for d in got.decisions}
    for name, reason in expect.get("excluded", {}).items():
        assert reasons[name].decision == "excluded", reasons[name]
        assert reason in reasons[name].reason
    for name, reason in expect.get("kept", {}).items():
        assert reasons[name].decision == "kept", reasons[name]
        assert reason in reasons[name].reason
    if got.workflow_ok:
        assert {d.job for d in got.decisions if d.decision == "kept"} == {j.name for j in got.jobs}


def check_job(want: dict[str, Any], got: dict[str, Any]) -> None:
    for key, value in want.items():
        if key == "needs":
            actual = None if got["needs"] is None else [n["job"] for n in got["needs"]]
        elif key == "needs_optional":
            actual = [n["optional"] for n in got["needs"]]
        elif key == "dependencies":
            actual = None if got["dependencies"] is None else list(got["dependencies"])
        elif key == "exit_codes":
            actual = list(got["allow_failure_exit_codes"])
        else:
            actual = got[key]
        assert actual == value, f"{want['name']}: {key}"


# --- Ruby fnmatch ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", GLOBS, ids=lambda c: f"{c[0]} ~ {c[1]}")
def test_gitlab_globs(case: list[Any]) -> None:
    pattern, path, matches = case
    assert fnmatch(pattern, path) is matches


# --- io defaults -----------------------------------------------------------------------------


def test_exists_and_compare_to_read_the_real_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "0")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("x")
    (tmp_path / "ignored.log").write_text("x")
    (tmp_path / ".gitignore").write_text("*.log\n")
    git("add", "-A")
    git("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "-m", "1")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")  # untracked, not ignored
    case: dict[str, Any] = {
        "jobs": {
            "docker": {"rules": [{"exists": ["Dockerfile"]}]},
            "logs": {"rules": [{"exists": ["*.log"]}]},
            "docs": {"rules": [{"changes": {"paths": ["docs/**/*"], "compare_to": "HEAD~1"}}]},
            "bad-ref": {"stage": "deploy", "rules": [{"when": "manual"}]},
        }
    }
    got = select_here(case, tmp_path)
    assert [j.name for j in got.jobs] == ["docker", "docs", "bad-ref"]
    case["jobs"]["bad-ref"]["rules"] = [{"changes": {"paths": ["x"], "compare_to": "nope"}}]
    with pytest.raises(SelectionError, match="compare_to is not a valid ref: nope"):
        select_here(case, tmp_path)


def test_exists_without_git_walks_the_directory(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("")
    case: dict[str, Any] = {
        "jobs": {
            "py": {"rules": [{"exists": ["**/*.py"]}]},
            "go": {"rules": [{"exists": ["go.mod"]}]},
        }
    }
    got = select_here(case, tmp_path)
    assert [j.name for j in got.jobs] == ["py"]


def test_file_questions_name_every_ref_compare_to_can_take() -> None:
    case: dict[str, Any] = {
        "workflow": [
            {"if": "$CI_COMMIT_TAG", "variables": {"BASE": "release"}},
            {"when": "always"},
        ],
        "variables": {"BASE": "main"},
        "jobs": {
            "literal": {"rules": [{"changes": {"paths": ["a"], "compare_to": "develop"}}]},
            "by-variable": {"rules": [{"changes": {"paths": ["a"], "compare_to": "$BASE"}}]},
            "exists": {"only": {"refs": ["branches"]}},
        },
    }
    asked = file_questions(spec(case), predefined({}))
    assert asked.compare_to == {"develop", "main", "release"}
    assert not asked.files
    case["jobs"]["exists"] = {"rules": [{"exists": ["Dockerfile"]}]}
    assert file_questions(spec(case), predefined({})).files
