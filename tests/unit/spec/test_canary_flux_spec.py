"""x-conveyor.canary (spec.canary) and conveyor.yaml's `flux:` (spec.flux): what they read,
and the problems they report with file, line and field. The bad values of x-conveyor.canary
are in bad/canary_values.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.canary import CanarySpec
from conveyor.model.flux import FluxSettings, GitLabStatus, ImageAutomation
from conveyor.spec import load_stack
from conveyor.spec.conveyor_file import parse_conveyor

PROJECT = Path(__file__).parents[1] / "render" / "flux_project"
ENVS = "environments:\n  staging:\n    branch: main\n"


def test_canary_settings_reach_the_service() -> None:
    stack = load_stack(PROJECT / "compose.yaml", environ={})
    assert stack.services["web"].canary == CanarySpec(
        steps=(5, 10, 25, 50), interval=30.0, threshold=3, max_error_ratio=0.02, max_latency=0.4
    )
    assert stack.services["api"].canary == CanarySpec()  # `canary: true`: the defaults
    assert stack.services["worker"].canary is None


def test_canary_false_asks_for_none(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: nginx\n    x-conveyor: {canary: false}\n"
    )
    assert load_stack(tmp_path / "compose.yaml", environ={}).services["web"].canary is None


def test_flux_settings_are_read() -> None:
    config = parse_conveyor((PROJECT / "conveyor.yaml").read_text())
    assert (
        config.flux.model_dump()
        == FluxSettings(
            branch="deploy",
            path="kubernetes",
            interval=120.0,
            sops_secret="store-age",
            conveyor_url="https://conveyor.example.com",  # the trailing / dropped
            gitlab=GitLabStatus(
                url="https://gitlab.example.com/store/deploy", token_secret="gitlab-status"
            ),
            images=ImageAutomation(
                range=">=1.0.0 <2.0.0", interval=600.0, services=("web", "api", "worker")
            ),
        ).model_dump()
    )
    assert config.flux.line("images", "services") == 23
    assert (
        parse_conveyor(ENVS).flux.model_dump() == FluxSettings().model_dump()
    )  # no section: the defaults


def test_flux_problems_name_line_and_field() -> None:
    text = ENVS + (
        "flux:\n"
        "  branch: deploy\n"
        "  pth: kubernetes\n"  # 6
        "  interval: 0.5s\n"  # 7
        "  sops_secret: Not_A_Name\n"  # 8
        "  conveyor_url: ftp://conveyor\n"  # 9
        "  gitlab: {token_secret: t}\n"  # 10
        "  images:\n"
        "    policy: alphabetical\n"
        "    range: '>=1'\n"  # 13
        "    extract: '$ts'\n"  # 14
        "    pattern: '(['\n"  # 15
    )
    with pytest.raises(SpecErrors) as caught:
        parse_conveyor(text)
    assert str(caught.value).splitlines() == [
        "conveyor.yaml:6: flux: unknown key 'pth' (did you mean 'path'?)",
        "conveyor.yaml:7: flux.interval: must be whole seconds, at least 1s, got '0.5s'",
        "conveyor.yaml:8: flux.sops_secret: must be a Kubernetes Secret's name (lower-case "
        "letters, digits, '-', '.'), got 'Not_A_Name'",
        "conveyor.yaml:9: flux.conveyor_url: must be an http(s) URL, got 'ftp://conveyor'",
        "conveyor.yaml:10: flux.gitlab: 'url' is required: the deploy repository's GitLab "
        "project URL",
        "conveyor.yaml:13: flux.images.range: applies only to policy semver, not alphabetical",
        "conveyor.yaml:14: flux.images.extract: needs 'pattern' (extract names its groups)",
        "conveyor.yaml:15: flux.images.pattern: is not a regular expression: unterminated "
        "character set at position 1",
    ]


def test_a_single_flux_problem_is_one_error() -> None:
    with pytest.raises(SpecError) as caught:
        parse_conveyor(ENVS + "flux:\n  images: {policy: newest}\n")
    assert str(caught.value).startswith("conveyor.yaml:5: flux.images.policy: ")
