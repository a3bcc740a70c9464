"""Environments (dev, staging, production…): a name, where it runs, and its delivery policy.

Each environment is a separate project on its target (own containers, frontends and state
database). Today the target is this host; the fleet and Kubernetes targets come later.
"""

from __future__ import annotations

from typing import Literal

from conveyor.model.stack import Frozen


class LocalTarget(Frozen):
    """Runs as a Compose project on this host's Docker Engine, behind this host's HAProxy."""

    kind: Literal["local"] = "local"
    project: str  # the Compose project name the environment's containers carry


Target = LocalTarget


class DeliveryPolicy(Frozen):
    """How changes reach the environment."""

    branch: str | None = None  # every commit on this branch is deployed
    promote_from: str | None = None  # or: releases are promoted from that environment
    protected: bool = False  # only deployers and admins may promote or roll back
    auto_rollback: bool = True  # a failed rollout goes back to the previous release


class Environment(Frozen):
    name: str
    target: Target
    policy: DeliveryPolicy = DeliveryPolicy()

    @classmethod
    def local(cls, project: str, name: str | None = None) -> Environment:
        """The environment a CLI command on a compose file acts on: the project itself, named
        after it unless a CI job names it (CI_ENVIRONMENT_NAME)."""
        return cls(name=name or project, target=LocalTarget(project=project))
