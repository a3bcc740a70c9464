"""conveyor.yaml's `kubernetes:` section -> model.KubeOptions (flags of `conveyor render
kubernetes` override it key by key):

    kubernetes:
      traffic: gateway            # or ingress
      gateway: infra/public       # [NAMESPACE/]NAME of the Gateway HTTPRoutes attach to
      ingress_class: nginx        # with traffic: ingress
      age_recipients: [age1...]   # who can decrypt the Secrets (SOPS)
      storage: 10Gi               # each named volume's claim

Problems go to the Context with file, line and field.
"""

from __future__ import annotations

import re
from typing import Any

from conveyor.model.kube import GatewayRef, KubeOptions
from conveyor.spec.context import Context
from conveyor.spec.keys import known_keys, mapping
from conveyor.spec.values import describe
from conveyor.spec.yamlpos import YamlPath

KEYS = ("traffic", "gateway", "ingress_class", "age_recipients", "storage")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_AGE = re.compile(r"age1[0-9a-z]{58}")


def parse_gateway(value: str) -> GatewayRef:
    """`NAME` or `NAMESPACE/NAME`; ValueError with a message to show."""
    namespace, _, name = value.rpartition("/")
    for part in (name, namespace) if namespace else (name,):
        if not _NAME.fullmatch(part):
            raise ValueError(
                f"must be NAME or NAMESPACE/NAME (lowercase letters, digits, '-'), got {value!r}"
            )
    return GatewayRef(name=name, namespace=namespace or None)


def kube_settings(ctx: Context, path: YamlPath, written: Any) -> KubeOptions:
    """The section at `path`; defaults for what it does not say (problems recorded)."""
    default = KubeOptions()
    if written is None:
        return default
    raw = mapping(ctx, path, written)
    if raw is None:
        return default
    known_keys(ctx, path, raw, KEYS)
    fields: dict[str, Any] = {}
    traffic = raw.get("traffic")
    if traffic is not None:
        if traffic in ("gateway", "ingress"):
            fields["traffic"] = traffic
        else:
            ctx.error((*path, "traffic"), f"must be gateway or ingress, got {describe(traffic)}")
    if raw.get("gateway") is not None:
        gateway = ctx.convert((*path, "gateway"), parse_gateway, str(raw["gateway"]), None)
        if gateway is not None:
            fields["gateway"] = gateway
    if raw.get("ingress_class") is not None:
        fields["ingress_class"] = str(raw["ingress_class"])
    recipients = _recipients(ctx, (*path, "age_recipients"), raw.get("age_recipients"))
    if recipients is not None:
        fields["age_recipients"] = recipients
    storage = raw.get("storage")
    if storage is not None:
        if _QUANTITY.fullmatch(str(storage)):
            fields["storage"] = str(storage)
        else:
            ctx.error(
                (*path, "storage"), f"must be a size like 10Gi or 500Mi, got {describe(storage)}"
            )
    return default.model_copy(update=fields)


def _recipients(ctx: Context, path: YamlPath, written: Any) -> tuple[str, ...] | None:
    """age public keys: one, or a list (each checked)."""
    if written is None:
        return None
    listed = written if isinstance(written, list) else [written]
    for index, key in enumerate(listed):
        if not (isinstance(key, str) and _AGE.fullmatch(key)):
            where = (*path, index) if isinstance(written, list) else path
            ctx.error(where, f"must be an age public key (age1…), got {describe(key)}")
    return tuple(str(k) for k in listed)
