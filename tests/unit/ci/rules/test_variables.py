"""Variable expansion, precedence, slugs, and predefined variables from real git repositories."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.ci.run.facts import git_facts
from conveyor.ci.select.facts import NULL_SHA
from conveyor.ci.select.predefined import (
    NewPipeline,
    environment_slug,
    environment_tier,
    environment_variables,
    job_variables,
    predefined,
    predefined_with_notes,
)
from conveyor.ci.select.variables import (
    PRECEDENCE,
    Layer,
    expand,
    expand_all,
    expand_existing,
    merge_precedence,
    references,
    slugify,
    split_yaml,
)
from conveyor.errors import VariablesError
from conveyor.model.pipeline import EnvironmentSpec, JobRun, Variable

CASES = yaml.safe_load((Path(__file__).parent / "variables_cases.yaml").read_text())
WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.mark.parametrize("case", CASES["expand"], ids=lambda c: c["value"])
def test_expand(case: dict[str, Any]) -> None:
    assert expand(case["value"], case["vars"]) == case["out"]


@pytest.mark.parametrize("case", CASES["expand_existing"], ids=lambda c: c["value"])
def test_expand_existing(case: dict[str, Any]) -> None:
    assert expand_existing(case["value"], case["vars"]) == case["out"]


@pytest.mark.parametrize("case", CASES["expand_all"], ids=lambda c: c["name"])
def test_expand_all(case: dict[str, Any]) -> None:
    assert expand_all(case["vars"], raw=set(case.get("raw", []))) == case["out"]


@pytest.mark.parametrize(("text", "slug"), CASES["slug"], ids=lambda v: str(v)[:30])
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug
    assert len(slug) <= 63


def test_references_skip_the_dollar_escape() -> None:
    assert references("$A ${B} $$C $1 $") == {"A", "B"}


def test_split_yaml_separates_raw_variables() -> None:
    values, raw = split_yaml({"A": Variable(value="$B"), "B": Variable(value="$$x", expand=False)})
    assert values == {"A": "$B", "B": "$$x"}
    assert raw == {"B"}


# --- precedence ------------------------------------------------------------------------------


def test_precedence_order_is_gitlabs() -> None:
    assert PRECEDENCE == (
        Layer.PREDEFINED,
        Layer.DEPLOYMENT,
        Layer.YAML_GLOBAL,
        Layer.WORKFLOW_RULES,
        Layer.YAML_JOB,
        Layer.MATRIX,
        Layer.RULES,
        Layer.DOTENV,
        Layer.INSTANCE,
        Layer.GROUP,
        Layer.PROJECT,
        Layer.PIPELINE,
        Layer.SCAN_POLICY,
        Layer.PIPELINE_POLICY,
    )


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (Layer.PREDEFINED, Layer.YAML_GLOBAL),  # YAML may override predefined variables
        (Layer.YAML_GLOBAL, Layer.YAML_JOB),
        (Layer.YAML_GLOBAL, Layer.WORKFLOW_RULES),
        (Layer.WORKFLOW_RULES, Layer.YAML_JOB),
        (Layer.YAML_JOB, Layer.MATRIX),
        (Layer.YAML_JOB, Layer.RULES),
        (Layer.RULES, Layer.DOTENV),
        (Layer.YAML_JOB, Layer.PROJECT),
        (Layer.DOTENV, Layer.PROJECT),
        (Layer.INSTANCE, Layer.GROUP),
        (Layer.GROUP, Layer.PROJECT),
        (Layer.PROJECT, Layer.PIPELINE),  # trigger, schedule, manual run, CLI
        (Layer.PIPELINE, Layer.PIPELINE_POLICY),
    ],
)
def test_higher_layer_wins(low: Layer, high: Layer) -> None:
    merged = merge_precedence({high: {"X": "high"}, low: {"X": "low", "ONLY_LOW": "1"}})
    assert merged == {"X": "high", "ONLY_LOW": "1"}


# --- git repositories ------------------------------------------------------------------------

Git = Callable[..., str]


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's git configuration out of the tests."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def make_repo(path: Path, branch: str = "main") -> Git:
    path.mkdir(parents=True, exist_ok=True)

    def git(*args: str, date: str = "2024-01-02T03:04:05+02:00") -> str:
        env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        done = subprocess.run(
            ["git", *args], cwd=path, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    git("init", "-q", "-b", branch)
    git("config", "user.name", "Jane Doe")
    git("config", "user.email", "jane@example.com")
    git("config", "tag.gpgSign", "false")
    git("config", "commit.gpgSign", "false")
    return git


def commit(git: Git, message: str, date: str = "2024-01-02T03:04:05+02:00") -> str:
    git("commit", "-q", "--allow-empty", "-m", message, date=date)
    return git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path, git_env: None) -> tuple[Path, Git]:
    path = tmp_path / "shop-api"
    git = make_repo(path)
    commit(git, "Initial import")
    commit(git, "Add checkout endpoint\n\nIt talks to the payment service.\n")
    return path, git


def variables(path: Path, **kwargs: Any) -> dict[str, str]:
    kwargs.setdefault("id", 42)
    kwargs.setdefault("created_at", WHEN)
    return predefined(path, git_facts(path), NewPipeline(**kwargs))


def with_notes(path: Path, **kwargs: Any) -> tuple[dict[str, str], list[str]]:
    return predefined_with_notes(path, git_facts(path), NewPipeline(**kwargs))


def test_branch_pipeline(repo: tuple[Path, Git]) -> None:
    path, git = repo
    got = variables(path)
    sha = git("rev-parse", "HEAD")
    assert got["CI"] == got["GITLAB_CI"] == "true"
    assert got["CI_SERVER"] == "yes"
    assert got["CI_COMMIT_SHA"] == sha
    assert got["CI_COMMIT_SHORT_SHA"] == sha[:8]
    assert got["CI_COMMIT_BEFORE_SHA"] == NULL_SHA
    assert got["CI_COMMIT_REF_NAME"] == got["CI_COMMIT_BRANCH"] == "main"
    assert got["CI_COMMIT_REF_SLUG"] == "main"
    assert "CI_COMMIT_TAG" not in got
    assert got["CI_COMMIT_TITLE"] == "Add checkout endpoint"
    assert got["CI_COMMIT_MESSAGE"] == "Add checkout endpoint\n\nIt talks to the payment service.\n"
    assert got["CI_COMMIT_DESCRIPTION"] == "\nIt talks to the payment service."
    assert got["CI_COMMIT_AUTHOR"] == "Jane Doe <jane@example.com>"
    assert got["CI_COMMIT_TIMESTAMP"] == "2024-01-02T01:04:05Z"
    assert got["CI_DEFAULT_BRANCH"] == "main"
    assert got["CI_COMMIT_REF_PROTECTED"] == "true"
    assert got["CI_PIPELINE_SOURCE"] == "push"
    assert got["CI_PIPELINE_ID"] == got["CI_PIPELINE_IID"] == "42"
    assert got["CI_PIPELINE_CREATED_AT"] == "2024-05-06T07:08:09Z"
    assert got["CI_PROJECT_DIR"] == str(path.resolve())
    assert got["CI_JOB_TOKEN"]
    assert got["GITLAB_USER_NAME"] == "Jane Doe"
    assert "CI_OPEN_MERGE_REQUESTS" not in got
    assert "CI_REGISTRY" not in got


def test_feature_branch_slug_and_protection(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("checkout", "-q", "-b", "Feature/JIRA-123_Fix")
    got = variables(path)
    assert got["CI_COMMIT_BRANCH"] == "Feature/JIRA-123_Fix"
    assert got["CI_COMMIT_REF_SLUG"] == "feature-jira-123-fix"
    assert got["CI_COMMIT_REF_PROTECTED"] == "false"
    assert got["CI_DEFAULT_BRANCH"] == "main"


def test_protected_ref_patterns(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("checkout", "-q", "-b", "release/1.4")
    assert variables(path, protected_refs=["release/*"])["CI_COMMIT_REF_PROTECTED"] == "true"
    assert variables(path, protected_refs=["main"])["CI_COMMIT_REF_PROTECTED"] == "false"
    assert variables(path)["CI_COMMIT_REF_PROTECTED"] == "false"


def test_a_long_title_makes_the_whole_message_the_description(repo: tuple[Path, Git]) -> None:
    path, git = repo
    message = "x" * 100 + "\n\nbody\n"
    commit(git, message)
    got = variables(path)
    assert got["CI_COMMIT_TITLE"] == "x" * 100
    assert got["CI_COMMIT_DESCRIPTION"] == message


def test_single_line_message_has_an_empty_description(repo: tuple[Path, Git]) -> None:
    path, git = repo
    commit(git, "Bump version")
    assert variables(path)["CI_COMMIT_DESCRIPTION"] == ""


def test_annotated_tag_pipeline(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("tag", "-a", "v1.0.0", "-m", "First release\n\nNotes.")
    for ref in ("v1.0.0", "refs/tags/v1.0.0"):
        got = variables(path, ref=ref)
        assert got["CI_COMMIT_TAG"] == got["CI_COMMIT_REF_NAME"] == "v1.0.0"
        assert got["CI_COMMIT_REF_SLUG"] == "v1-0-0"
        assert got["CI_COMMIT_TAG_MESSAGE"] == "First release\n\nNotes."
        assert "CI_COMMIT_BRANCH" not in got
        assert got["CI_COMMIT_SHA"] == git("rev-parse", "HEAD")
        assert got["CI_COMMIT_REF_PROTECTED"] == "false"  # no protected tags by default


def test_lightweight_tag_pipeline_and_branch_without_ref(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("tag", "v2")
    got = variables(path, ref="v2", protected_refs=["v*"])
    assert got["CI_COMMIT_TAG"] == "v2"
    assert "CI_COMMIT_TAG_MESSAGE" not in got
    assert got["CI_COMMIT_REF_PROTECTED"] == "true"
    # without a ref, HEAD's branch decides even though a tag points at HEAD
    assert variables(path)["CI_COMMIT_BRANCH"] == "main"


def test_tag_that_is_not_head_is_refused(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("tag", "old", "HEAD~1")
    with pytest.raises(VariablesError, match="tag old points at"):
        variables(path, ref="old")
    with pytest.raises(VariablesError, match="tag nope does not exist"):
        variables(path, ref="refs/tags/nope")


def test_branch_ref_names_a_branch(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("branch", "develop")
    got = variables(path, ref="refs/heads/develop")
    assert got["CI_COMMIT_BRANCH"] == "develop"
    got, notes = with_notes(path, id=1, ref="ghost")
    assert got["CI_COMMIT_BRANCH"] == "ghost"
    assert notes == ["no local branch ghost"]


def test_detached_head_on_a_branch_tip(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("checkout", "-q", "--detach")
    got, notes = with_notes(path, id=1)
    assert got["CI_COMMIT_BRANCH"] == "main"
    assert "detached HEAD" in notes[0]


def test_detached_head_on_no_branch(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("checkout", "-q", "HEAD~1")
    sha = git("rev-parse", "HEAD")
    got, notes = with_notes(path, id=1)
    assert got["CI_COMMIT_SHA"] == sha
    assert got["CI_COMMIT_REF_NAME"] == sha[:8]
    assert "pass a ref" in notes[0]


def test_no_remote_gives_a_local_project(repo: tuple[Path, Git]) -> None:
    path, _ = repo
    got = variables(path, registry="127.0.0.1:5000")
    assert got["CI_PROJECT_PATH"] == "local/shop-api"
    assert got["CI_PROJECT_NAMESPACE"] == "local"
    assert got["CI_PROJECT_NAME"] == "shop-api"
    assert got["CI_PROJECT_PATH_SLUG"] == "local-shop-api"
    assert got["CI_REGISTRY_IMAGE"] == "127.0.0.1:5000/local/shop-api"
    assert got["CI_REGISTRY_USER"] == "gitlab-ci-token"
    assert got["CI_REGISTRY_PASSWORD"] == got["CI_JOB_TOKEN"]


def test_ssh_origin_names_the_project(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("remote", "add", "origin", "git@gitlab.example.com:Group/sub/Shop-API.git")
    got = variables(
        path, registry="registry.example.com:5050", registry_user="bot", registry_password="pw"
    )
    assert got["CI_PROJECT_PATH"] == "Group/sub/Shop-API"
    assert got["CI_PROJECT_NAMESPACE"] == "Group/sub"
    assert got["CI_PROJECT_ROOT_NAMESPACE"] == "Group"
    assert got["CI_PROJECT_NAME"] == "Shop-API"
    assert got["CI_PROJECT_PATH_SLUG"] == "group-sub-shop-api"
    assert got["CI_SERVER_HOST"] == "gitlab.example.com"
    assert got["CI_PROJECT_URL"] == "https://gitlab.example.com/Group/sub/Shop-API"
    assert got["CI_PIPELINE_URL"] == "https://gitlab.example.com/Group/sub/Shop-API/-/pipelines/42"
    assert got["CI_REGISTRY_IMAGE"] == "registry.example.com:5050/group/sub/shop-api"
    assert (got["CI_REGISTRY_USER"], got["CI_REGISTRY_PASSWORD"]) == ("bot", "pw")


def test_https_origin_drops_credentials(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("remote", "add", "origin", "https://ci:s3cret@gitlab.example.com:8443/team/app.git")
    got = variables(path)
    assert got["CI_PROJECT_URL"] == "https://gitlab.example.com:8443/team/app"
    assert got["CI_SERVER_URL"] == "https://gitlab.example.com:8443"
    assert not any("s3cret" in value for value in got.values())


def test_origin_head_is_the_default_branch(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("update-ref", "refs/remotes/origin/trunk", "HEAD")
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/trunk")
    got = variables(path)
    assert got["CI_DEFAULT_BRANCH"] == "trunk"
    assert got["CI_COMMIT_REF_PROTECTED"] == "false"
    assert variables(path, default_branch="main")["CI_COMMIT_REF_PROTECTED"] == "true"


def test_master_is_the_default_when_there_is_no_main(tmp_path: Path, git_env: None) -> None:
    git = make_repo(tmp_path / "old", branch="master")
    commit(git, "init")
    git("checkout", "-q", "-b", "topic")
    assert variables(tmp_path / "old")["CI_DEFAULT_BRANCH"] == "master"


def test_the_current_branch_is_the_last_resort_default(tmp_path: Path, git_env: None) -> None:
    git = make_repo(tmp_path / "odd", branch="trunk")
    commit(git, "init")
    assert variables(tmp_path / "odd")["CI_DEFAULT_BRANCH"] == "trunk"


def test_repository_without_commits(tmp_path: Path, git_env: None) -> None:
    make_repo(tmp_path / "empty", branch="dev")
    got, notes = with_notes(tmp_path / "empty", id=1)
    assert got["CI_COMMIT_SHA"] == NULL_SHA
    assert got["CI_COMMIT_BRANCH"] == "dev"
    assert any("no commit yet" in note for note in notes)


def test_not_a_repository(tmp_path: Path, git_env: None) -> None:
    got, notes = with_notes(tmp_path, id=3)
    assert got["CI_COMMIT_SHA"] == NULL_SHA
    assert got["CI_COMMIT_BRANCH"] == "main"
    assert got["CI_PROJECT_PATH"] == f"local/{tmp_path.name}"
    assert "not a git repository" in notes[0]


def test_merge_request_pipeline_has_no_branch_variable(repo: tuple[Path, Git]) -> None:
    path, git = repo
    git("checkout", "-q", "-b", "feature")
    got = variables(path, source="merge_request_event")
    assert "CI_COMMIT_BRANCH" not in got
    assert got["CI_COMMIT_REF_NAME"] == "feature"
    assert got["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"] == "feature"
    assert got["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"] == "main"


def test_sources(repo: tuple[Path, Git]) -> None:
    path, _ = repo
    assert variables(path, source="trigger")["CI_PIPELINE_TRIGGERED"] == "true"
    assert "CI_PIPELINE_TRIGGERED" not in variables(path, source="schedule")
    with pytest.raises(VariablesError, match="unknown pipeline source 'cron'"):
        variables(path, source="cron")


def test_before_sha_and_iid(repo: tuple[Path, Git]) -> None:
    path, git = repo
    before = git("rev-parse", "HEAD~1")
    got = variables(path, before_sha=before, iid=5)
    assert got["CI_COMMIT_BEFORE_SHA"] == before
    assert (got["CI_PIPELINE_ID"], got["CI_PIPELINE_IID"]) == ("42", "5")


# --- job variables ---------------------------------------------------------------------------


def test_job_variables_for_a_plain_job() -> None:
    job = JobRun(name="Build Image", spec="Build Image", stage="build", when="on_success")
    got = job_variables(job, 7, project_url="https://gitlab.example.com/g/p")
    assert got == {
        "CI_JOB_NAME": "Build Image",
        "CI_JOB_NAME_SLUG": "build-image",
        "CI_JOB_STAGE": "build",
        "CI_JOB_ID": "7",
        "CI_JOB_URL": "https://gitlab.example.com/g/p/-/jobs/7",
        "CI_NODE_TOTAL": "1",
    }


def test_job_variables_for_parallel_and_manual_jobs() -> None:
    job = JobRun(
        name="test 2/3", spec="test", stage="test", when="manual", node_index=2, node_total=3
    )
    got = job_variables(job, 8, project_url="http://localhost/local/x", started_at=WHEN)
    assert got["CI_NODE_INDEX"] == "2"
    assert got["CI_NODE_TOTAL"] == "3"
    assert got["CI_JOB_MANUAL"] == "true"
    assert got["CI_JOB_NAME_SLUG"] == "test-2-3"
    assert got["CI_JOB_STARTED_AT"] == "2024-05-06T07:08:09Z"


# GitLab's spec for Gitlab::Slug::Environment, with SHA-256 stubbed to 'a' * 64 ("q517sa").
ENVIRONMENT_SLUGS = {
    "staging-12345678901234567": "staging-123456789-q517sa",
    "9-staging-123456789012345": "env-9-staging-123-q517sa",
    "staging-1234567890123456": "staging-1234567890123456",
    "staging-1234567890123456-": "staging-123456789-q517sa",
    "production": "production",
    "PRODUCTION": "production-q517sa",
    "review/1-foo": "review-1-foo-q517sa",
    "1-foo": "env-1-foo-q517sa",
    "1/foo": "env-1-foo-q517sa",
    "foo-": "foo",
    "foo--bar": "foo-bar-q517sa",
    "foo**bar": "foo-bar-q517sa",
    "*-foo": "env-foo-q517sa",
    "staging-12345678-": "staging-12345678",
    "staging-12345678-01234567": "staging-12345678-q517sa",
    "": "env-q517sa",
}


class _FakeSha:
    def hexdigest(self) -> str:
        return "a" * 64


@pytest.mark.parametrize(("name", "slug"), ENVIRONMENT_SLUGS.items())
def test_environment_slug(name: str, slug: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("conveyor.ci.select.predefined.hashlib.sha256", lambda _data: _FakeSha())
    assert environment_slug(name) == slug


@pytest.mark.parametrize(
    ("name", "tier"),
    [
        ("review/main", "development"),
        ("qa", "testing"),
        ("staging", "staging"),
        ("production", "production"),
        ("live-eu", "production"),
        ("sandbox", "other"),
    ],
)
def test_environment_tier_is_guessed_from_the_name(name: str, tier: str) -> None:
    assert environment_tier(name) == tier


def test_environment_variables_expand_name_and_url() -> None:
    env = EnvironmentSpec(
        name="review/$CI_COMMIT_REF_SLUG", url="https://$CI_COMMIT_REF_SLUG.example.com"
    )
    got = environment_variables(env, {"CI_COMMIT_REF_SLUG": "feat-x"})
    assert got["CI_ENVIRONMENT_NAME"] == "review/feat-x"
    assert got["CI_ENVIRONMENT_URL"] == "https://feat-x.example.com"
    assert got["CI_ENVIRONMENT_ACTION"] == "start"
    assert got["CI_ENVIRONMENT_TIER"] == "development"
    assert got["CI_ENVIRONMENT_SLUG"].startswith("review-feat-x-")
    tiered = EnvironmentSpec(name="eu", deployment_tier="production", action="stop")
    got = environment_variables(tiered, {})
    assert (got["CI_ENVIRONMENT_TIER"], got["CI_ENVIRONMENT_ACTION"]) == ("production", "stop")
    assert "CI_ENVIRONMENT_URL" not in got
