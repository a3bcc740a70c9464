"""Where a `target: kubernetes` environment is delivered: the deploy repository Flux watches
(conveyor.yaml `environments.<env>.deploy`, docs/gitops.md). Pure data; spec.deploy_repo
loads it, app.kube_delivery commits there.

    environments:
      production:
        branch: main
        target: kubernetes
        deploy:
          repo: ssh://git@gitlab.example.com/shop/deploy.git   # or an absolute path
          branch: main                 # default: flux.branch
          path: clusters/production    # default: clusters/<env>
"""

from __future__ import annotations

from typing import Literal

from conveyor.model.frozen import Frozen

# `docker`: Conveyor rolls the compose app out on Docker hosts (the default). `kubernetes`:
# a release is a commit of the rendered manifests to the deploy repository; Flux applies it.
TargetKind = Literal["docker", "kubernetes"]
TARGETS: tuple[TargetKind, ...] = ("docker", "kubernetes")


class DeployRepo(Frozen):
    """The deploy repository, branch and directory an environment's manifests are committed
    to: `<path>/base/` and `<path>/overlays/<env>/` (each environment has its own base, since
    two environments may run different commits of the compose file)."""

    repo: str  # a URL git can clone and push (ssh://, https://, file://) or an absolute path
    branch: str = "main"
    path: str = "."  # inside the deploy repository; spec gives `clusters/<env>` by default

    def overlay(self, directory: str) -> str:
        """The overlay's directory in the deploy repository (what Flux's Kustomization reads),
        given the overlay's own directory name (render.kubernetes names it after the
        environment as a DNS label: app.kube_delivery.overlay_of)."""
        return _join(self.path, "overlays", directory)


def default_path(env: str) -> str:
    return f"clusters/{env}"


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p not in ("", "."))
