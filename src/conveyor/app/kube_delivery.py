"""A release of a `target: kubernetes` environment is a commit (issue 13; docs/gitops.md):
the compose project at the source commit, rendered as a Kustomize base and the environment's
overlay (`render.kubernetes`) with the images named by the digests their registry serves,
committed to the environment's directory of its deploy repository and pushed. Flux applies
it; its events (`POST /hooks/flux`) say whether it did. A rollback is a revert there.

    images = pinned_images(stack, resolve)             # service -> repo:tag@sha256:…
    done = deliver(checkout, spec, loaded, options, source, images)
    back = roll_back(checkout, spec, to_release, by)

Nothing here runs on a cluster: the rendering is checked offline by its own tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from conveyor.app.render import config_texts, write_rendering
from conveyor.errors import ActionRefused, ConveyorError, NotFound
from conveyor.gitops.deploy_repo import Committed, DeployCheckout, Reverted
from conveyor.host.validate import check
from conveyor.model.environments import EnvironmentSpec
from conveyor.model.stack import Stack
from conveyor.render.kubernetes import KUSTOMIZE, KubeOptions, render_kubernetes
from conveyor.render.kubernetes.names import dns_label
from conveyor.spec.compose import Loaded

# image reference (`repo:tag`) -> the digest its registry serves (`sha256:…`)
Resolver = Callable[[str], str]


class DeliveryError(ConveyorError):
    """The release cannot be rendered as asked (an image that is not pushed, say)."""


def checkout(spec: EnvironmentSpec, data_dir: Path, environ: Mapping[str, str]) -> DeployCheckout:
    """The server's clone of `spec`'s deploy repository (one per environment)."""
    if spec.deploy is None:
        raise DeliveryError(f"{spec.name}: target kubernetes without a deploy repository")
    return DeployCheckout(spec.deploy, data_dir / "environments" / spec.name / "deploy", environ)


def pinned_images(stack: Stack, resolve: Resolver) -> dict[str, str]:
    """Service -> the image reference its pods run: `repo:tag@sha256:…` for every image the
    project builds (`build:` with `image:`, pushed by the pipeline under that name), as the
    registry serves it now; an image written with a digest stays as written. A third party's
    image by tag (`postgres:16`) is left as compose.yaml says (in the base). Raises
    DeliveryError naming the service when a built image has no name or is not pushed."""
    out: dict[str, str] = {}
    for name, service in sorted(stack.services.items()):
        image = service.image
        if image is not None and "@" in image:
            out[name] = image
            continue
        if service.build is None:
            continue
        if image is None:
            raise DeliveryError(
                f"services.{name}: a Kubernetes environment pulls images from a registry: "
                "give the service an `image:` its pipeline pushes (e.g. "
                "registry.example.com/team/app:${CI_COMMIT_SHA})"
            )
        try:
            out[name] = f"{image}@{resolve(image)}"
        except ConveyorError as e:
            raise DeliveryError(f"services.{name}: {e}") from None
    return out


@dataclass(frozen=True)
class Delivery:
    committed: Committed
    overlay: str  # the overlay's directory in the deploy repository (what Flux applies)
    images: Mapping[str, str]
    warnings: tuple[str, ...]  # what Kubernetes does otherwise than compose.yaml says


def deliver(
    checkout: DeployCheckout,
    spec: EnvironmentSpec,
    loaded: Loaded,
    options: KubeOptions,
    source: str,
    images: Mapping[str, str],
) -> Delivery:
    """Render `loaded` (the compose project at commit `source`, without the environment's
    overrides: the overlay applies them) for `spec` and commit it. Raises SourceError when
    git cannot."""
    assert spec.deploy is not None
    rendering = render_kubernetes(
        loaded.stack,
        {spec.name: spec},
        options,
        config_texts(loaded),
        {spec.name: dict(images)},
        only=spec.name,
    )
    overlay = f"overlays/{dns_label(spec.name)}"

    def write(directory: Path) -> None:
        write_rendering(rendering, directory)
        # Nothing Flux could not build is committed: the release fails here instead.
        verdict = check(KUSTOMIZE, directory / overlay)
        if not verdict.ok:
            said = "; ".join(verdict.messages) or verdict.output.strip()[-500:]
            raise DeliveryError(f"kubectl kustomize refuses {overlay}: {said}")

    committed = checkout.deliver(spec.name, source, loaded.stack.project, write, images)
    warnings = tuple(loaded.warning(w.path, w.message).render() for w in rendering.warnings)
    return Delivery(committed, overlay_of(spec), dict(images), warnings)


def overlay_of(spec: EnvironmentSpec) -> str:
    """The environment's overlay directory in its deploy repository."""
    assert spec.deploy is not None
    return spec.deploy.overlay(dns_label(spec.name))


def roll_back(
    checkout: DeployCheckout, spec: EnvironmentSpec, to_release: int | None, by: str
) -> Reverted:
    """Revert the environment's newest release commit(s) back to `to_release` (default: the
    previous release) and push. ActionRefused/NotFound when there is nothing to go back to."""
    try:
        return checkout.revert(spec.name, to_release, by)
    except LookupError as e:
        raise NotFound(f"{spec.name}: {e}") from None
    except ValueError as e:
        raise ActionRefused(f"{spec.name}: {e}") from None
