"""`conveyor render --check`'s findings: each rule fires on what it is about, and only then."""

from __future__ import annotations

from conveyor.render.kubernetes import Finding, check_manifests
from tests.unit.render.kubernetes.conftest import CASES, render_case


def _by(findings: list[Finding]) -> dict[tuple[str, str], Finding]:
    return {(f.service, f.check): f for f in findings}


def test_a_well_specified_service_passes_every_check() -> None:
    found = _by(render_case(CASES["corpus-web-db"]).findings())
    for check in ("probes", "resources", "disruption-budget", "image-tag", "non-root"):
        assert found[("web", check)].level == "ok", found[("web", check)]
    assert found[("web", "read-only-root")].level == "ok"
    assert ("web", "liveness") not in found


def test_each_rule_reports_what_is_missing() -> None:
    found = _by(render_case(CASES["corpus-jobs-and-risks"]).findings())
    assert found[("app", "image-tag")].level == "critical"  # risky/app: no tag
    assert found[("app", "non-root")].level == "critical"  # user: root, privileged
    assert found[("app", "resources")].level == "critical"
    assert found[("migrate", "image-tag")].level == "ok"
    assert found[("migrate", "probes")].message.startswith("a Job")
    assert found[("agent", "probes")].level == "ok"  # a TCP readiness probe on its port
    assert found[("agent", "liveness")].level == "warning"
    # no `user:`: runAsNonRoot alone, and the kubelet refuses an image whose USER is root
    assert found[("migrate", "non-root")].level == "warning"
    assert "set user: UID" in found[("migrate", "non-root")].message


def test_latest_is_refused_and_an_autoscaled_service_needs_its_budget() -> None:
    rendering = render_case(CASES["corpus-autoscale-rps"])
    found = _by(rendering.findings())
    assert found[("api-v2", "image-tag")].level == "critical"
    assert found[("api-v2", "disruption-budget")].level == "ok"
    without_budget = [m for m in rendering.rendering.base if m["kind"] != "PodDisruptionBudget"]
    found = _by(check_manifests(without_budget))
    assert found[("api-v2", "disruption-budget")].level == "critical"
