"""Flux for the deploy repository (issue 13, item 6), and the tree `conveyor render flux`
writes into it. Pure: no I/O.

    flux-system/          GitRepository + Kustomizations (this directory reconciles itself),
                          notification Providers + Alerts, image automation when asked
    infrastructure/       what the cluster needs once: Fluent Bit, the shared RED/host rules
    observability/<env>/  the environment's monitors, SLO rules, dashboards, canaries
    <path>/base/, <path>/overlays/<env>/   `conveyor render kubernetes` (not written here)

Reconciliation order per environment: `infrastructure` -> `apps-<env>` (the overlay; SOPS
decryption, wait until every object is ready) -> `observability-<env>` (monitors and canaries
point at the apps' Deployments). A release is a commit to the deploy repository: Conveyor
commits the overlay with the new image digests (or Flux's image automation commits the new
tags, `flux.images`), Flux applies it, and reports back through the Alerts.

`VALIDATOR` builds a directory with `kubectl kustomize`; PrometheusRules' groups go through
`render.prometheus_rules.VALIDATOR` (`kube_observe.rule_groups` gives them as a rule file).

The controllers themselves (`flux install`/`flux bootstrap`), the prometheus-operator, Flagger,
Grafana and Elasticsearch are not rendered: they are prerequisites (docs/flux.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.model.flux import FluxSettings, ImageAutomation
from conveyor.model.log_shipping import LogShipping
from conveyor.model.stack import Service
from conveyor.render import flagger, kube_observe
from conveyor.render.kube_meta import (
    FLUX_NAMESPACE,
    KubeEnvironment,
    dump,
    kustomization,
    metadata,
)
from conveyor.render.prometheus_rules import duration
from conveyor.render.validator import Validator

SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
NOTIFICATION_API = "notification.toolkit.fluxcd.io/v1beta3"
IMAGE_API = "image.toolkit.fluxcd.io/v1beta2"
SOURCE = "flux-system"  # the GitRepository of the deploy repository (bootstrap's name)
WEBHOOK_PATH = "/hooks/flux"  # on Conveyor's server: app.flux_hook (docs/flux.md)
TIMEOUT = "5m"

# Every directory written holds a kustomization.yaml: kubectl builds it offline (no cluster).
VALIDATOR = Validator(
    name="kubectl kustomize",
    argv=("kubectl", "kustomize", "{file}"),
    install_hint="install kubectl (scripts/install-host.sh)",
)


@dataclass(frozen=True)
class FluxInputs:
    """Everything the deploy repository's Flux files are rendered from."""

    repo_url: str  # the deploy repository Flux clones
    project: str
    environments: Sequence[KubeEnvironment]  # by name
    settings: FluxSettings = field(default_factory=FluxSettings)
    # Environments Conveyor promotes into (conveyor.yaml `promote_from`): Flux's image
    # automation never writes their overlays, so promotion keeps its gates.
    promoted: frozenset[str] = field(default_factory=frozenset)
    es: kube_observe.EsOutput = field(default_factory=lambda: kube_observe.es_output(LogShipping()))
    prometheus_url: str = kube_observe.DEFAULT_PROMETHEUS
    gateway: flagger.GatewayRef = field(default_factory=flagger.GatewayRef)
    # Environments with `target: kubernetes`: the overlay directory the server commits each
    # release to (`deploy.path`/overlays/<env>), which their Kustomization must apply.
    overlays: Mapping[str, str] = field(default_factory=dict)

    def overlay(self, env: str) -> str:
        """The overlay Flux applies for `env`, as Flux writes a path (`./a/b`)."""
        found = self.overlays.get(env)
        return _path(found) if found is not None else _path(self.settings.path, "overlays", env)


def _path(*parts: str) -> str:
    """A path in the deploy repository as Flux writes it: `./a/b`."""
    joined = "/".join(p.strip("/") for p in parts if p not in ("", "."))
    return f"./{joined}" if joined else "./"


def _kustomization(name: str, path: str, interval: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": KUSTOMIZE_API,
        "kind": "Kustomization",
        "metadata": metadata(name, FLUX_NAMESPACE),
        "spec": {
            "interval": interval,
            "retryInterval": "1m",
            "timeout": TIMEOUT,
            "sourceRef": {"kind": "GitRepository", "name": SOURCE},
            "path": path,
            "prune": True,
            **spec,
        },
    }


def sync(inputs: FluxInputs) -> list[dict[str, Any]]:
    """The GitRepository and every Kustomization, `flux-system` (this directory) first."""
    s = inputs.settings
    interval = duration(s.interval)
    out: list[dict[str, Any]] = [
        {
            "apiVersion": SOURCE_API,
            "kind": "GitRepository",
            "metadata": metadata(SOURCE, FLUX_NAMESPACE),
            "spec": {
                "interval": interval,
                "url": inputs.repo_url,
                "ref": {"branch": s.branch},
                "secretRef": {"name": SOURCE},  # what `flux bootstrap` creates
            },
        },
        _kustomization(SOURCE, _path("flux-system"), "10m"),
        _kustomization(
            "infrastructure",
            _path("infrastructure"),
            "10m",
            wait=False,
            healthChecks=[
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": "fluent-bit",
                    "namespace": kube_observe.LOGGING_NAMESPACE,
                }
            ],
        ),
    ]
    for env in inputs.environments:
        out.append(
            _kustomization(
                f"apps-{env.name}",
                inputs.overlay(env.name),
                interval,
                dependsOn=[{"name": "infrastructure"}],
                wait=True,  # ready means every Deployment rolled out, every Job done
                decryption={"provider": "sops", "secretRef": {"name": s.sops_secret}},
            )
        )
        out.append(
            _kustomization(
                f"observability-{env.name}",
                _path("observability", env.name),
                interval,
                dependsOn=[{"name": f"apps-{env.name}"}],
                # A Canary is not "ready" while it analyses a release: waiting on it would
                # hold every later change of the environment back.
                wait=False,
            )
        )
    return out


def notifications(inputs: FluxInputs) -> list[dict[str, Any]]:
    """Providers and Alerts: every Flux event to Conveyor's server (when `conveyor_url` is
    set), each environment's reconciliation as a GitLab commit status (when `gitlab` is)."""
    s = inputs.settings
    out: list[dict[str, Any]] = []
    if s.conveyor_url is not None:
        out += [
            {
                "apiVersion": NOTIFICATION_API,
                "kind": "Provider",
                "metadata": metadata("conveyor", FLUX_NAMESPACE),
                "spec": {
                    # HMAC-signed with the Secret's `token` (X-Signature: sha256=...).
                    "type": "generic-hmac",
                    "address": s.conveyor_url + WEBHOOK_PATH,
                    "secretRef": {"name": s.webhook_secret},
                },
            },
            {
                "apiVersion": NOTIFICATION_API,
                "kind": "Alert",
                "metadata": metadata("conveyor", FLUX_NAMESPACE),
                "spec": {
                    "providerRef": {"name": "conveyor"},
                    "eventSeverity": "info",
                    "eventSources": [
                        {"kind": "GitRepository", "name": "*"},
                        {"kind": "Kustomization", "name": "*"},
                    ],
                },
            },
        ]
    if s.gitlab is not None:
        out += [
            {
                "apiVersion": NOTIFICATION_API,
                "kind": "Provider",
                "metadata": metadata("gitlab", FLUX_NAMESPACE),
                "spec": {
                    "type": "gitlab",
                    "address": s.gitlab.url,
                    "secretRef": {"name": s.gitlab.token_secret},
                },
            },
            {
                "apiVersion": NOTIFICATION_API,
                "kind": "Alert",
                "metadata": metadata("gitlab-commit-status", FLUX_NAMESPACE),
                "spec": {
                    "providerRef": {"name": "gitlab"},
                    "eventSeverity": "info",
                    "eventSources": [
                        {"kind": "Kustomization", "name": f"apps-{env.name}"}
                        for env in inputs.environments
                    ],
                },
            },
        ]
    return out


def image_repository(image: str) -> str:
    """`registry/name` of an image reference, without tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    return name


def _policy(automation: ImageAutomation) -> dict[str, Any]:
    if automation.policy == "semver":
        return {"semver": {"range": automation.range}}
    return {automation.policy: {"order": automation.order}}


def image_automation(inputs: FluxInputs) -> list[dict[str, Any]]:
    """An ImageRepository and ImagePolicy per service whose image Flux follows (those
    `flux.images.services` names, else those the project builds), and an
    ImageUpdateAutomation per environment that follows a branch; empty unless
    `flux.images` asks."""
    automation = inputs.settings.images
    if automation is None:
        return []
    services: dict[str, Service] = {}
    for env in inputs.environments:
        for name, service in env.stack.services.items():
            wanted = name in automation.services if automation.services else service.build
            if service.image and wanted:
                services.setdefault(name, service)
    out: list[dict[str, Any]] = []
    for name, service in sorted(services.items()):
        assert service.image is not None
        out.append(
            {
                "apiVersion": IMAGE_API,
                "kind": "ImageRepository",
                "metadata": metadata(name, FLUX_NAMESPACE),
                "spec": {
                    "image": image_repository(service.image),
                    "interval": duration(automation.interval),
                },
            }
        )
        policy: dict[str, Any] = {
            "imageRepositoryRef": {"name": name},
            "policy": _policy(automation),
        }
        if automation.pattern is not None:
            policy["filterTags"] = {"pattern": automation.pattern}
            if automation.extract is not None:
                policy["filterTags"]["extract"] = automation.extract
        out.append(
            {
                "apiVersion": IMAGE_API,
                "kind": "ImagePolicy",
                "metadata": metadata(name, FLUX_NAMESPACE),
                "spec": policy,
            }
        )
    branch = inputs.settings.branch
    for env in inputs.environments:
        if env.name in inputs.promoted:
            continue
        out.append(
            {
                "apiVersion": IMAGE_API,
                "kind": "ImageUpdateAutomation",
                "metadata": metadata(f"images-{env.name}", FLUX_NAMESPACE),
                "spec": {
                    "interval": duration(automation.interval),
                    "sourceRef": {"kind": "GitRepository", "name": SOURCE},
                    "git": {
                        "checkout": {"ref": {"branch": branch}},
                        "commit": {
                            "author": {
                                "name": "fluxcdbot",
                                "email": "fluxcdbot@users.noreply.invalid",
                            },
                            "messageTemplate": f"{env.name}: update images (Flux image automation)",
                        },
                        "push": {"branch": branch},
                    },
                    "update": {
                        "path": inputs.overlay(env.name),
                        "strategy": "Setters",
                    },
                },
            }
        )
    return out


def files(inputs: FluxInputs) -> dict[str, str]:
    """Every file of the deploy repository this module owns, by path: byte-identical for
    the same inputs."""
    out: dict[str, str] = {}
    system = {"sync.yaml": sync(inputs)}
    if found := notifications(inputs):
        system["notifications.yaml"] = found
    if found := image_automation(inputs):
        system["image-automation.yaml"] = found
    for name, objects in system.items():
        out[f"flux-system/{name}"] = dump(objects)
    out["flux-system/kustomization.yaml"] = kustomization(sorted(system))

    infra = {
        "fluent-bit.yaml": kube_observe.fluent_bit(inputs.es),
        "prometheus-rules.yaml": kube_observe.shared_rules(inputs.environments),
    }
    for name, objects in infra.items():
        out[f"infrastructure/{name}"] = dump(objects)
    out["infrastructure/kustomization.yaml"] = kustomization(sorted(infra))

    for env in inputs.environments:
        slo = kube_observe.slo_rule(env)
        parts = {
            "monitors.yaml": kube_observe.monitors(env),
            "prometheus-rules.yaml": [slo] if slo is not None else [],
            "dashboards.yaml": [
                kube_observe.datasource(env, inputs.prometheus_url),
                *kube_observe.dashboards(env),
            ],
            "canaries.yaml": flagger.canaries(env, inputs.gateway, inputs.prometheus_url),
        }
        kept = {name: objects for name, objects in parts.items() if objects}
        for name, objects in kept.items():
            out[f"observability/{env.name}/{name}"] = dump(objects)
        out[f"observability/{env.name}/kustomization.yaml"] = kustomization(
            sorted(kept), namespace=env.namespace
        )
    return dict(sorted(out.items()))
