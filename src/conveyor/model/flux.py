"""How Flux delivers the rendered manifests from the deploy repository (the `flux:` section of
conveyor.yaml, docs/flux.md). Pure data; `render.flux` turns it into Flux resources.

    flux:
      branch: main                 # the deploy repository's branch Flux follows
      path: kubernetes             # where `conveyor render kubernetes` wrote base/ + overlays/
      interval: 1m
      sops_secret: sops-age        # the Secret holding the age key Flux decrypts with
      conveyor_url: https://conveyor.example.com   # Flux's events go to <url>/hooks/flux
      gitlab: {url: https://gitlab.example.com/team/deploy, token_secret: gitlab-token}
      images: {policy: semver, range: ">=1.0.0", services: [web]}  # Flux commits new tags
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from conveyor.model.frozen import Frozen

ImagePolicyKind = Literal["semver", "alphabetical", "numerical"]


class ImageAutomation(Frozen):
    """Flux updates the image tags in git itself (ImageRepository, ImagePolicy,
    ImageUpdateAutomation), as an alternative to Conveyor committing digests."""

    policy: ImagePolicyKind = "semver"
    range: str = ">=0.0.0"  # semver: the versions allowed
    pattern: str | None = None  # tags considered (a regular expression; filterTags.pattern)
    extract: str | None = None  # what of a matching tag is ordered (`$ts`; filterTags.extract)
    order: Literal["asc", "desc"] = "asc"  # alphabetical/numerical: asc takes the highest
    interval: float = 300.0  # seconds between registry scans
    # The services whose images Flux follows; empty: those the project builds (`build:`),
    # never a third party's image such as a database's.
    services: tuple[str, ...] = ()


class GitLabStatus(Frozen):
    """Flux reports each reconciliation as a commit status of the deploy repository."""

    url: str  # the deploy repository's GitLab project URL
    token_secret: str = "gitlab-token"  # noqa: S105 (a Secret's name)
    # the Secret whose `token` key holds an API token


class FluxSettings(Frozen):
    branch: str = "main"
    path: str = "."  # in the deploy repository: base/ and overlays/<env>/ sit under it
    interval: float = 60.0  # seconds between Flux's fetches and reconciliations
    sops_secret: str = "sops-age"  # noqa: S105 (the name of the Secret with the age key)
    conveyor_url: str | None = None
    webhook_secret: str = "conveyor-webhook"  # noqa: S105 (a name)
    # the Secret whose `token` key signs events
    gitlab: GitLabStatus | None = None
    images: ImageAutomation | None = None
    # Where each key was written (dotted path under `flux` -> line), so a check against the
    # compose file can point at conveyor.yaml. Not serialised.
    file: str = Field(default="conveyor.yaml", exclude=True, repr=False)
    lines: dict[str, int] = Field(default_factory=dict, exclude=True, repr=False)

    def line(self, *path: str) -> int | None:
        """The line `path` (under `flux`) was written at, or the nearest parent's."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(".".join(path[:end]))
            if found is not None:
                return found
        return None
