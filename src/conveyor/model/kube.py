"""How `conveyor render kubernetes` renders: where HTTP traffic comes in, who can decrypt
the Secrets. Pure data (render.kubernetes reads it; the CLI fills it from flags)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Traffic = Literal["gateway", "ingress"]


@dataclass(frozen=True)
class GatewayRef:
    """The Gateway (Gateway API) HTTPRoutes attach to."""

    name: str = "conveyor"
    namespace: str | None = None  # None: the route's own namespace


@dataclass(frozen=True)
class KubeOptions:
    """`traffic`: HTTPRoutes on `gateway`, or Ingresses of `ingress_class` (None: the
    cluster's default class). `age_recipients`: the age public keys `.sops.yaml` encrypts
    Secrets to. `storage`: each volumeClaimTemplate's request (Compose says no size)."""

    traffic: Traffic = "gateway"
    gateway: GatewayRef = GatewayRef()
    ingress_class: str | None = None
    age_recipients: tuple[str, ...] = ()
    storage: str = "1Gi"
