"""`conveyor env show` of a kubernetes environment says where its release is in git and what
Flux said of it."""

from __future__ import annotations

import pytest

from conveyor.app.server_views import DeliveryView, EnvironmentDetail, EnvironmentSummary
from conveyor.cli.environments import show_detail


def _detail(flux: str, message: str = "") -> EnvironmentDetail:
    return EnvironmentDetail(
        environment=EnvironmentSummary(
            name="staging", branch="main", state="serving", release=2, commit="a" * 40,
            target="kubernetes",
        ),
        desired_commit="a" * 40,
        status=None,
        delivery=DeliveryView(
            repo="/srv/deploy.git", branch="main", overlay="clusters/staging/overlays/staging",
            commit="b" * 40, release=2, flux=flux, flux_message=message,
        ),
    )  # fmt: skip


def test_the_delivery_and_flux_s_word_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    show_detail(_detail("committed"))
    show_detail(_detail("failed", "Kustomization/apps-staging: HealthCheckFailed: timeout"))
    out = " ".join(capsys.readouterr().out.split())

    assert "release 2" in out
    assert "delivered to /srv/deploy.git main:clusters/staging/overlays/staging as bbbbbbbb" in out
    assert "Flux has not reported on it yet" in out
    assert "Flux failed: Kustomization/apps-staging: HealthCheckFailed: timeout" in out
