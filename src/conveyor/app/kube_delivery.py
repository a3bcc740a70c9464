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

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from conveyor.app.kube_secrets import Sealed, empty_secrets, seal
from conveyor.app.render import config_texts, secret_texts, write_rendering
from conveyor.errors import ActionRefused, ConveyorError, NotFound
from conveyor.gitops.deploy_repo import Committed, DeployCheckout, Reverted
from conveyor.host.validate import check
from conveyor.model.environments import EnvironmentSpec
from conveyor.model.stack import Stack
from conveyor.render.kubernetes import (
    KUSTOMIZE,
    KubeOptions,
    Rendering,
    render_kubernetes,
    secrets_to_encrypt,
)
from conveyor.render.kubernetes.names import dns_label
from conveyor.spec.compose import Loaded
from conveyor.spec.yamlpos import SpecWarning

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
    # The Secrets encrypted anew and kept (None: no age recipient, placeholders committed).
    secrets: Sealed | None = None
    empty_secrets: tuple[str, ...] = ()  # Secrets (or keys) committed without a value


def deliver(
    checkout: DeployCheckout,
    spec: EnvironmentSpec,
    loaded: Loaded,
    options: KubeOptions,
    source: str,
    images: Mapping[str, str],
    *,
    environ: Mapping[str, str] | None = None,
    secrets_key: bytes | None = None,
    root: Path | None = None,
) -> Delivery:
    """Render `loaded` (the compose project at commit `source`, without the environment's
    overrides: the overlay applies them) for `spec` and commit it. With
    `options.age_recipients` and `secrets_key` (app.kube_secrets.digest_key), every Secret
    is filled from the compose file's secrets and `environ` (the values the server has for
    the environment) and committed encrypted with sops; without, as placeholders. Warnings
    name files relative to `root` (the work tree). Raises SourceError when git cannot,
    SopsError when sops cannot encrypt."""
    assert spec.deploy is not None
    out = _Writer(spec, loaded, options, images, environ, secrets_key)
    committed = checkout.deliver(spec.name, source, loaded.stack.project, out.write, images)
    warnings = tuple(
        _relative(loaded.warning(w.path, w.message), root).render() for w in out.rendering.warnings
    )
    empty = tuple(empty_secrets(out.rendering.files, out.plain))
    return Delivery(committed, overlay_of(spec), dict(images), warnings, out.sealed, empty)


def pending(
    checkout: DeployCheckout,
    spec: EnvironmentSpec,
    loaded: Loaded,
    options: KubeOptions,
    images: Mapping[str, str],
    *,
    environ: Mapping[str, str] | None = None,
    secrets_key: bytes | None = None,
) -> str:
    """What delivering `loaded` would change in the environment's directory of the deploy
    branch, as a unified diff (paths as in the deploy repository; "" when nothing). The
    same rendering as `deliver` (Secrets too: one whose values are unchanged is the committed
    file), nothing committed. Raises DeliveryError, SourceError, SopsError."""
    out = _Writer(spec, loaded, options, images, environ, secrets_key)
    return checkout.pending(out.write)


class _Writer:
    """An environment's rendering, written into the deploy repository's directory by
    `write` (Secrets sealed against what the directory holds, kustomize must build it)."""

    def __init__(
        self,
        spec: EnvironmentSpec,
        loaded: Loaded,
        options: KubeOptions,
        images: Mapping[str, str],
        environ: Mapping[str, str] | None,
        secrets_key: bytes | None,
    ) -> None:
        self.rendering = render_kubernetes(
            loaded.stack,
            {spec.name: spec},
            options,
            config_texts(loaded),
            {spec.name: dict(images)},
            only=spec.name,
        )
        self.overlay = f"overlays/{dns_label(spec.name)}"
        self.recipients = options.age_recipients
        self.key = secrets_key if self.recipients else None
        self.plain = (
            secrets_to_encrypt(
                loaded.stack,
                {spec.name: spec},
                secret_texts(loaded, environ or {}),
                self.rendering,
            )
            if self.key is not None
            else {}
        )
        self.sealed: Sealed | None = None

    def write(self, directory: Path) -> None:
        files = self.rendering
        if self.key is not None:
            # Read before write_rendering clears the overlay: the committed encryptions.
            committed = {path: _read(directory / path) for path in self.plain}
            kept = {p: t for p, t in committed.items() if t}
            self.sealed = seal(self.plain, self.recipients, self.key, kept)
            files = _with_files(self.rendering, self.sealed.files)
        write_rendering(files, directory)
        # Nothing Flux could not build is committed: the release fails here instead.
        verdict = check(KUSTOMIZE, directory / self.overlay)
        if not verdict.ok:
            said = "; ".join(verdict.messages) or verdict.output.strip()[-500:]
            raise DeliveryError(f"kubectl kustomize refuses {self.overlay}: {said}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _with_files(rendering: Rendering, files: Mapping[str, str]) -> Rendering:
    return dataclasses.replace(rendering, files={**rendering.files, **files})


def _relative(warning: SpecWarning, root: Path | None) -> SpecWarning:
    """The warning's file relative to the work tree (compose.yaml:LINE): its absolute path
    names the server's data directory, which means nothing to the reader."""
    if root is None or not Path(warning.file).is_absolute():
        return warning
    for base in (root, root.resolve()):
        if Path(warning.file).is_relative_to(base):
            shown = Path(warning.file).relative_to(base).as_posix()
            return dataclasses.replace(warning, file=shown)
    return warning


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
