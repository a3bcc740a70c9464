"""Golden files for every example and every corpus case, and byte-identical re-renders.

CONVEYOR_UPDATE_GOLDEN=1 rewrites the golden files (then read the diff before committing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.model.environments import EnvironmentSpec, ServiceOverride
from conveyor.model.kube import KubeOptions
from conveyor.model.stack import MetricsEndpoint, Stack
from conveyor.render.kubernetes import render_kubernetes
from conveyor.spec.compose import load_compose
from tests.unit.render.kubernetes.conftest import CASES, GOLDEN, as_text, render_case


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_golden_file(case: str) -> None:
    text = as_text(render_case(CASES[case]))
    golden = GOLDEN / f"{case}.txt"
    if os.environ.get("CONVEYOR_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_twice_gives_the_same_bytes(case: str) -> None:
    first = render_case(CASES[case]).rendering.files
    second = render_case(CASES[case]).rendering.files
    assert [(p, t.encode()) for p, t in sorted(first.items())] == [
        (p, t.encode()) for p, t in sorted(second.items())
    ]


def _reversed(stack: Stack) -> Stack:
    """The same project with every mapping in the opposite order."""
    return stack.model_copy(
        update={
            "services": dict(reversed(stack.services.items())),
            "volumes": dict(reversed(stack.volumes.items())),
            "secrets": dict(reversed(stack.secrets.items())),
            "configs": dict(reversed(stack.configs.items())),
        }
    )


@pytest.mark.parametrize("case", ["corpus-web-db", "example-shop"])
def test_the_order_services_are_written_in_does_not_change_the_output(case: str) -> None:
    stack = load_compose([Path("compose.yaml")], environ={}, cwd=CASES[case]).stack
    assert render_kubernetes(stack).files == render_kubernetes(_reversed(stack)).files


def test_no_secret_value_reaches_the_output() -> None:
    directory = CASES["corpus-web-db"]
    text = as_text(render_case(directory))
    secret = (directory / "api_key.txt").read_text(encoding="utf-8").strip()
    assert secret not in text
    # credentials in `environment:` (compose) and in an environment's overrides (conveyor.yaml)
    assert "from-the-file" not in text
    assert "staging-only" not in text
    assert "SESSION_SECRET: ''" in text


def test_age_recipients_go_to_sops_yaml_and_nowhere_else() -> None:
    recipients = ("age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",)
    rendering = render_case(CASES["corpus-web-db"], KubeOptions(age_recipients=recipients))
    sops = rendering.rendering.files[".sops.yaml"]
    assert recipients[0] in sops
    assert "encrypted_regex: ^(data|stringData)$" in sops
    assert not [w for w in rendering.warnings if "age recipient" in w.message]
    secrets = [p for p in rendering.rendering.files if "/secrets/" in p]
    assert sorted(secrets) == [
        "overlays/production/secrets/secret-api-key.yaml",
        "overlays/production/secrets/web-env-secret.yaml",
        "overlays/staging/secrets/secret-api-key.yaml",
        "overlays/staging/secrets/web-env-secret.yaml",
    ]


def test_a_secret_only_an_environment_gives_is_read_by_the_service() -> None:
    stack = load_compose([Path("compose.yaml")], environ={}, cwd=CASES["corpus-web-db"]).stack
    env = EnvironmentSpec(
        name="qa", overrides={"db": ServiceOverride(environment={"DB_PASSWORD": "x"})}
    )
    rendering = render_kubernetes(stack, {"qa": env})
    assert "name: db-env-secret" in rendering.files["base/statefulset-db.yaml"]
    assert "DB_PASSWORD: ''" in rendering.files["overlays/qa/secrets/db-env-secret.yaml"]
    assert "name: db-env-secret" not in render_kubernetes(stack).files["base/statefulset-db.yaml"]


def test_a_metrics_port_of_its_own_is_served() -> None:
    stack = load_compose([Path("compose.yaml")], environ={}, cwd=CASES["corpus-web-db"]).stack
    web = stack.services["web"].model_copy(update={"metrics": MetricsEndpoint(port=9100)})
    files = render_kubernetes(stack.model_copy(update={"services": {"web": web}})).files
    assert "port: 9100" in files["base/service-web.yaml"]
    assert "containerPort: 9100" in files["base/deployment-web.yaml"]
