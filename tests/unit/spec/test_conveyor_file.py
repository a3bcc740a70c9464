"""conveyor.yaml: the good/ corpus loads into the model, every bad/ file fails with exactly
the text of its `.expect` file (one `file:line: field: message` per problem, sorted by line)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor.errors import ConveyorError, SpecError, SpecErrors
from conveyor.model.environments import GpgVerify, PromotionGates, ServiceOverride, SshVerify
from conveyor.spec.conveyor_file import load_conveyor_file, parse_conveyor, ref_name_problem

HERE = Path(__file__).parent / "conveyor"
GOOD = HERE / "good"
BAD = HERE / "bad"
BAD_CASES = sorted(path.stem for path in BAD.glob("*.yaml"))
ONE_LINE = re.compile(r"^[\w./-]+(:\d+)?: \S.*$")


def test_bad_corpus_is_complete() -> None:
    assert sorted(path.stem for path in BAD.glob("*.expect")) == BAD_CASES
    assert len(BAD_CASES) >= 30


@pytest.mark.parametrize("name", BAD_CASES)
def test_bad_file_fails_with_expected_text(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD)
    expected = (BAD / f"{name}.expect").read_text(encoding="utf-8").rstrip("\n")

    with pytest.raises(ConveyorError) as caught:
        load_conveyor_file(Path(f"{name}.yaml"))

    assert str(caught.value) == expected
    lines = expected.splitlines()
    assert all(ONE_LINE.match(line) for line in lines), lines
    if len(lines) == 1:
        assert isinstance(caught.value, SpecError)
    else:
        assert isinstance(caught.value, SpecErrors)
        numbers = [error.line or 0 for error in caught.value.errors]
        assert numbers == sorted(numbers)


@pytest.mark.parametrize("path", sorted(GOOD.glob("*.yaml")), ids=lambda p: p.name)
def test_every_good_file_loads(path: Path) -> None:
    config = load_conveyor_file(path)
    assert config.environments
    for name, env in config.environments.items():
        assert env.name == name
        assert (env.branch is None) != (env.promote_from is None)


def test_the_issue_example_loads_as_written() -> None:
    config = load_conveyor_file(GOOD / "issue_example.yaml")

    staging, production = config.environments["staging"], config.environments["production"]
    assert (staging.branch, staging.compose, staging.poll_interval) == ("main", "compose.yaml", 5)
    assert staging.protected is False
    assert (production.branch, production.poll_interval, production.protected) == (
        "production",
        60.0,
        True,
    )
    assert production.gates == PromotionGates()
    assert production.verify is None and production.overrides == {}


def test_every_key_reaches_the_model() -> None:
    config = load_conveyor_file(GOOD / "every_key.yaml")

    staging = config.environments["staging"]
    assert staging.compose == "deploy/compose.staging.yaml"
    assert staging.poll_interval == 90.0
    assert staging.overrides["web"] == ServiceOverride(
        replicas=1,
        environment={"LOG_LEVEL": "debug", "FEATURE_X": "true", "WORKERS": "2"},
        ports={8080: 18080},
    )
    assert staging.overrides["worker"].replicas == 0
    assert staging.verify == SshVerify(allowed_signers="/etc/conveyor/allowed_signers")
    assert staging.on_interrupted == "abandon"
    production = config.environments["production"]
    assert production.on_interrupted == "rerun"  # the default (and a promotion runs no pipeline)
    assert production.promote_from == "staging"
    assert production.gates == PromotionGates(soak=600, pipeline_passed=False, approval=True)
    assert production.auto_promote is True
    assert config.environments["staging"].auto_promote is False
    assert production.verify == GpgVerify(
        keyring="/etc/conveyor/gnupg",
        fingerprints=(
            "31E787681C5AA5C4BD8C2FEB233AA2A48F8B999C",
            "9F1C2A3B4C5D6E7F8091A2B3C4D5E6F708192A3B",
        ),
    )
    release = config.environments["release"]
    assert release.tag_pattern == "v*"
    assert release.accepts_tag("v1.2.0") and not release.accepts_tag("nightly-v1")
    assert config.notifications.webhook is not None
    assert config.notifications.webhook.url == "https://chat.example.test/hooks/deploys"


def test_yaml_merge_keys_fill_gates_and_sources_come_first() -> None:
    config = load_conveyor_file(GOOD / "promotion_chain.yaml")

    assert config.environments["staging"].gates == PromotionGates(soak=30, approval=False)
    assert config.environments["production"].gates == PromotionGates(soak=30, approval=True)
    assert config.promotion_order() == ["dev", "staging", "production"]


def test_messages_name_the_file_as_the_caller_says(tmp_path: Path) -> None:
    path = tmp_path / "checkout" / "conveyor.yaml"
    path.parent.mkdir()
    path.write_text("environments:\n  staging:\n    branch: main\n    protect: true\n")

    with pytest.raises(SpecError) as caught:
        load_conveyor_file(path, name="conveyor.yaml")

    assert str(caught.value) == (
        "conveyor.yaml:4: environments.staging: unknown key 'protect' (did you mean 'protected'?)"
    )


def test_a_missing_file_says_where_it_belongs(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"conveyor.yaml: no such file: the repository needs one"):
        load_conveyor_file(tmp_path / "conveyor.yaml", name="conveyor.yaml")


def test_text_from_git_parses_with_lines_kept_for_overrides() -> None:
    config = parse_conveyor(
        "environments:\n  staging:\n    branch: main\n    overrides:\n      web:\n"
        "        ports:\n          '80': 8080\n"
    )
    staging = config.environments["staging"]

    assert staging.file == "conveyor.yaml"
    assert staging.line("overrides", "web", "ports", "80") == 7
    assert staging.line("overrides", "nothing-there") == 4  # nearest written parent
    # Where keys were written is not part of what the environment means.
    assert "lines" not in staging.model_dump()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("main", None),
        ("release/1.x", None),
        ("feature/a.b-c_d", None),
        ("-x", "it starts with '-'"),
        ("a b", "spaces and control characters are not allowed"),
        ("a~1", "'~' is not allowed"),
        ("a//b", "'//' is not allowed"),
        ("x@{1}", "'@{' is not allowed"),
        ("dir/", "it ends with '/' or '.'"),
        ("dir/.hidden", "a part starts with '.'"),
        ("main.lock", "a part ends with '.lock'"),
        ("@", "'@' alone is not a ref name"),
    ],
)
def test_branch_names_follow_git_check_ref_format(name: str, problem: str | None) -> None:
    assert ref_name_problem(name) == problem


def test_an_environment_is_its_own_project_with_its_delivery_policy() -> None:
    config = load_conveyor_file(GOOD / "every_key.yaml")

    production = config.environments["production"].environment("shop")

    assert production.name == "production"
    assert production.target.project == "shop-production"
    assert production.policy.promote_from == "staging"
    assert production.policy.protected is True
    assert [e.name for e in config.on_branch("main")] == ["release", "staging"]
    assert config.on_branch("production") == []


def test_a_kubernetes_target_names_its_deploy_repository() -> None:
    config = load_conveyor_file(GOOD / "kubernetes_target.yaml")
    staging = config.environments["staging"]
    production = config.environments["production"]

    assert (staging.target, production.target) == ("kubernetes", "kubernetes")
    assert config.environments["preview"].target == "docker"
    assert config.environments["preview"].deploy is None
    assert staging.deploy is not None and production.deploy is not None
    # Unwritten: flux.branch (what Flux follows) and a directory of the environment's own.
    assert (staging.deploy.branch, staging.deploy.path) == ("release", "clusters/staging")
    assert staging.deploy.overlay("staging") == "clusters/staging/overlays/staging"
    assert production.deploy.overlay("eu-1") == "clusters/eu/production/overlays/eu-1"
    assert production.deploy.repo == "/srv/git/deploy.git"
    assert (production.deploy.branch, production.deploy.path) == ("prod", "clusters/eu/production")


def test_an_environment_is_a_docker_one_unless_it_says_otherwise() -> None:
    config = parse_conveyor("environments:\n  dev:\n    branch: main\n")
    assert config.environments["dev"].target == "docker"
    assert config.environments["dev"].deploy is None
