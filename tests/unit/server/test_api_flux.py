"""`POST /hooks/flux`: Flux's notification events (a generic-hmac Provider, X-Signature keyed
with the webhook secret) become flux.reconciled / flux.failed events of the environment whose
Kustomization they are about; a wrong signature records nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from conveyor.app.access import open_server_db
from conveyor.app.flux_hook import FluxReceiver
from conveyor.gitops.flux_events import parse_event
from conveyor.model.events import EventKind, Level
from conveyor.server.api import create_app
from tests.unit.server.conftest import SECRET, TestClient, make_backend

ENVIRONMENTS = {"staging": object(), "production": object()}


def event(name: str = "apps-staging", severity: str = "info", **extra: Any) -> bytes:
    return json.dumps(
        {
            "involvedObject": {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "name": name,
                "namespace": "flux-system",
            },
            "severity": severity,
            "reason": "ReconciliationSucceeded" if severity == "info" else "HealthCheckFailed",
            "message": "Applied revision: main@sha1:0123abc",
            "metadata": {"revision": "main@sha1:0123abc"},
            "reportingController": "kustomize-controller",
            "timestamp": "2026-12-06T10:00:00Z",
            **extra,
        }
    ).encode()


def signed(body: bytes, secret: str = SECRET, algorithm: str = "sha256") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()
    return {"X-Signature": f"{algorithm}={digest}", "Gotk-Component": "kustomize-controller"}


class Told:
    def __init__(self) -> None:
        self.events: list[tuple[EventKind, str, Level, str | None, dict[str, Any]]] = []

    def __call__(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        data: dict[str, Any] | None = None,
        *,
        environment: str | None = None,
        service: str | None = None,
    ) -> None:
        self.events.append((kind, message, level, environment, data or {}))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, Told]:
    backend, _, _ = make_backend()
    told = Told()
    flux = FluxReceiver(SECRET, told, lambda: ENVIRONMENTS)
    app = create_app(backend, open_server_db(tmp_path), hook_secret=SECRET, flux=flux)
    return TestClient(app), told


def test_a_signed_event_is_recorded_for_its_environment(setup: tuple[TestClient, Told]) -> None:
    client, told = setup
    ok = client.post("/hooks/flux", content=event(), headers=signed(event()))
    failed_body = event("apps-production", "error")
    failed = client.post(
        "/hooks/flux", content=failed_body, headers=signed(failed_body, algorithm="sha512")
    )
    assert (ok.status_code, ok.json()) == (
        200,
        {"kind": "flux.reconciled", "environment": "staging"},
    )
    assert failed.json() == {"kind": "flux.failed", "environment": "production"}
    (k1, m1, l1, e1, d1), (k2, _, l2, e2, _) = told.events
    assert (k1, l1, e1) == ("flux.reconciled", "info", "staging")
    assert m1.startswith("Kustomization/apps-staging: ReconciliationSucceeded: Applied")
    assert d1["revision"] == "main@sha1:0123abc" and d1["controller"] == "kustomize-controller"
    assert (k2, l2, e2) == ("flux.failed", "error", "production")


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no signature
        {"X-Signature": "sha256=00"},  # a wrong one
        {"X-Signature": "md5=abc"},  # a hash Flux does not use
        signed(event(), secret="another-secret"),
    ],
)
def test_an_unsigned_or_wrongly_signed_event_records_nothing(
    setup: tuple[TestClient, Told], headers: dict[str, str]
) -> None:
    client, told = setup
    answer = client.post("/hooks/flux", content=event(), headers=headers)
    assert answer.status_code == 401
    assert told.events == []


def test_a_body_that_is_no_flux_event_is_refused(setup: tuple[TestClient, Told]) -> None:
    client, told = setup
    for body in (b"[]", b"{}", b"not json", event(severity="debug")):
        answer = client.post("/hooks/flux", content=body, headers=signed(body))
        assert answer.status_code == 400, body
    assert told.events == []


def test_objects_of_no_environment_are_recorded_without_one(
    setup: tuple[TestClient, Told],
) -> None:
    client, told = setup
    for name in ("flux-system", "infrastructure", "apps-unknown"):
        body = event(name)
        assert client.post("/hooks/flux", content=body, headers=signed(body)).json() == {
            "kind": "flux.reconciled",
            "environment": None,
        }
    assert [e[3] for e in told.events] == [None, None, None]


def test_without_a_receiver_the_route_is_off(tmp_path: Path) -> None:
    backend, _, _ = make_backend()
    client = TestClient(create_app(backend, open_server_db(tmp_path), hook_secret=SECRET))
    assert client.post("/hooks/flux", content=event(), headers=signed(event())).status_code == 404


def test_without_a_webhook_secret_events_are_refused(tmp_path: Path) -> None:
    told = Told()
    backend, _, _ = make_backend()
    flux = FluxReceiver(None, told, lambda: ENVIRONMENTS)
    client = TestClient(create_app(backend, open_server_db(tmp_path), hook_secret=None, flux=flux))
    answer = client.post("/hooks/flux", content=event(), headers=signed(event()))
    assert answer.status_code == 401 and "no webhook secret" in answer.json()["detail"]
    assert told.events == []


def test_the_revision_is_read_from_any_metadata_key_ending_in_revision() -> None:
    body = event(metadata={"kustomize.toolkit.fluxcd.io/revision": "main/731f7ea"})
    assert parse_event(body).revision == "main/731f7ea"
