"""How `conveyor render kubernetes` renders: where HTTP traffic comes in, who can decrypt
the Secrets, how big volumes are. Pure data: conveyor.yaml's `kubernetes:` section
(spec.kube_settings), flags over it, read by render.kubernetes."""

from __future__ import annotations

from typing import Literal

from conveyor.model.frozen import Frozen

Traffic = Literal["gateway", "ingress"]


class GatewayRef(Frozen):
    """The Gateway (Gateway API) HTTPRoutes attach to."""

    name: str = "conveyor"
    namespace: str | None = None  # None: the route's own namespace


class KubeOptions(Frozen):
    """`traffic`: HTTPRoutes on `gateway`, or Ingresses of `ingress_class` (None: the
    cluster's default class). `age_recipients`: the age public keys Secrets are encrypted to.
    `storage`: each volumeClaimTemplate's request (Compose says no size)."""

    traffic: Traffic = "gateway"
    gateway: GatewayRef = GatewayRef()
    ingress_class: str | None = None
    age_recipients: tuple[str, ...] = ()
    storage: str = "1Gi"
