"""`render flux` and the server agree on where a `target: kubernetes` environment's overlay
is: its Kustomization (and image automation) read `deploy.path/overlays/<env>`, the directory
the server commits each release to; other environments keep `flux.path/overlays/<env>`."""

from __future__ import annotations

from pathlib import Path

from conveyor.app.flux import flux_inputs
from conveyor.render import flux

CONVEYOR = """\
flux:
  path: manifests
  images: {policy: semver}
environments:
  staging:
    branch: main
    target: kubernetes
    deploy: {repo: /srv/deploy.git}
  preview:
    branch: preview
"""
COMPOSE = "services:\n  web:\n    build: .\n    image: registry.example.com/shop/web:1.0.0\n"


def test_a_kubernetes_environments_kustomization_applies_the_directory_the_server_commits(
    tmp_path: Path,
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "conveyor.yaml").write_text(CONVEYOR)
    inputs = flux_inputs(
        "ssh://git@example.com/deploy.git", [], Path("conveyor.yaml"), {}, tmp_path
    )

    paths = {
        o["metadata"]["name"]: o["spec"]["path"]
        for o in flux.sync(inputs)
        if o["kind"] == "Kustomization"
    }
    updates = {
        o["metadata"]["name"]: o["spec"]["update"]["path"]
        for o in flux.image_automation(inputs)
        if o["kind"] == "ImageUpdateAutomation"
    }

    assert paths["apps-staging"] == "./clusters/staging/overlays/staging"
    assert paths["apps-preview"] == "./manifests/overlays/preview"
    assert updates == {
        "images-staging": "./clusters/staging/overlays/staging",
        "images-preview": "./manifests/overlays/preview",
    }
