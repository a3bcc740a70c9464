"""The Kustomize layout: `base/` (every service's manifests) and `overlays/<env>/` per
conveyor.yaml environment (namespace, replicas and environment overrides, image references,
the SOPS-ready Secrets). Deterministic: same inputs, byte-identical files (sorted keys,
stable names, no timestamps). Pure; `kubectl kustomize DIR` (KUSTOMIZE) checks each part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from conveyor.model.environments import EnvironmentSpec
from conveyor.model.stack import Stack
from conveyor.render.kube_meta import image_setter
from conveyor.render.kubernetes.availability import autoscaler, disruption_budget, replicated
from conveyor.render.kubernetes.config import (
    Generator,
    base_config,
    env_map_name,
    env_override,
    filled,
    secret_placeholders,
    secret_values,
    sops_config,
)
from conveyor.render.kubernetes.names import dns_label
from conveyor.render.kubernetes.objects import Collected, KubeOptions, KubeWarning, Manifest
from conveyor.render.kubernetes.traffic import (
    gateway_port_patches,
    network_policies,
    routes,
    services,
)
from conveyor.render.kubernetes.workloads import image_of, kind_of, workload
from conveyor.render.validator import Validator

KUSTOMIZE = Validator(
    name="kubectl kustomize",
    argv=("kubectl", "kustomize", "{file}"),
    install_hint="install kubectl (1.14 or later has kustomize built in)",
)
KUSTOMIZATION = "kustomization.yaml"
_KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
DEFAULT_ENVIRONMENT = "default"  # the one overlay when there is no conveyor.yaml


@dataclass(frozen=True)
class Rendering:
    """Files (path under the output directory -> text) and what the compose file asks that
    the manifests do not do (each pointing at its key)."""

    files: Mapping[str, str]
    warnings: tuple[KubeWarning, ...]
    base: tuple[Manifest, ...]  # the base's manifests (for `render --check`)

    def directories(self) -> list[str]:
        """The kustomization directories: base, then each overlay."""
        return sorted(
            path.removesuffix("/" + KUSTOMIZATION)
            for path in self.files
            if path.endswith("/" + KUSTOMIZATION)
        )


class _Dumper(yaml.SafeDumper):
    """Plain YAML: a mapping used twice (one probe action for two probes) is written twice,
    not as an anchor and alias, which some tools mishandle and people misread."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def dump(document: object) -> str:
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=100_000
    )


def base_manifests(
    stack: Stack,
    options: KubeOptions,
    out: Collected,
    env_secrets: frozenset[str] = frozenset(),
) -> list[Manifest]:
    """Every object of the base. `env_secrets`: services some environment gives secret
    variables to (they read their env Secret)."""
    manifests: list[Manifest] = []
    for service in sorted(stack.services.values(), key=lambda s: s.name):
        kind = kind_of(stack, service)
        secret = service.name in env_secrets
        manifests.append(workload(stack, service, out, options.storage, secret))
        # A Flagger canary (render.flagger) owns the service's Service (it points it at the
        # primary) and, with the Gateway API, its HTTPRoute: rendering them too would have
        # Flux and Flagger undo each other at every reconciliation.
        canaried = service.canary is not None and kind == "Deployment"
        if not canaried:
            manifests.extend(services(stack, service, kind, out))
        if kind == "Job":
            continue
        if not (canaried and options.traffic == "gateway"):
            manifests.extend(routes(stack, service, options, out))
        if replicated(service):
            manifests.append(disruption_budget(stack, service, canaried))
        scaler = autoscaler(stack, service, kind, out)
        if scaler is not None:
            manifests.append(scaler)
    manifests.extend(network_policies(stack))
    return manifests


def render_kubernetes(
    stack: Stack,
    environments: Mapping[str, EnvironmentSpec] | None = None,
    options: KubeOptions | None = None,
    config_texts: Mapping[str, str] | None = None,
    images: Mapping[str, Mapping[str, str]] | None = None,
    only: str | None = None,
) -> Rendering:
    """The base and one overlay per environment (`only`: that one alone).

    `environments`: conveyor.yaml's (None or empty: one overlay, `default`). `config_texts`:
    the text of each `file:` config. `images`: environment -> service -> image reference
    (`repo@sha256:…` or `repo:tag`) that environment runs instead of the compose file's."""
    options = options or KubeOptions()
    out = Collected()
    envs = dict(environments or {}) or {
        DEFAULT_ENVIRONMENT: EnvironmentSpec(name=DEFAULT_ENVIRONMENT)
    }
    secret_env = frozenset(
        name
        for env in envs.values()
        for name, override in env.overrides.items()
        if name in stack.services and env_override(stack.services[name], override.environment)[1]
    )
    manifests = base_manifests(stack, options, out, secret_env)
    generators, config_files = base_config(stack, config_texts or {}, out)
    files: dict[str, str] = {f"base/{p}": text for p, text in config_files.items()}
    resources: list[str] = []
    for m in manifests:
        name = f"{m['kind'].lower()}-{m['metadata']['name']}.yaml"
        files[f"base/{name}"] = dump(m)
        resources.append(name)
    base: Manifest = {
        "apiVersion": _KUSTOMIZE_API,
        "kind": "Kustomization",
        "resources": sorted(resources),
    }
    if generators:
        base["configMapGenerator"] = [g.entry() for g in generators]
    files[f"base/{KUSTOMIZATION}"] = dump(base)
    for name in sorted(envs):
        if only is not None and name != only:
            continue
        files.update(_overlay(stack, envs[name], (images or {}).get(name, {}), options, out))
    if stack.secrets or any(f.startswith("overlays/") and "/secrets/" in f for f in files):
        if options.age_recipients:
            files[".sops.yaml"] = dump(sops_config(options.age_recipients))
        else:
            out.warn(
                (),
                "no age recipient given (--age-recipient): .sops.yaml is not written; the "
                "SOPS-ready Secrets must be encrypted before they are committed",
            )
    unique = sorted(set(out.warnings), key=lambda w: (tuple(str(p) for p in w.path), w.message))
    return Rendering(files=files, warnings=tuple(unique), base=tuple(manifests))


def _overlay(
    stack: Stack,
    env: EnvironmentSpec,
    images: Mapping[str, str],
    options: KubeOptions,
    out: Collected,
) -> dict[str, str]:
    root = f"overlays/{dns_label(env.name)}"
    namespace = dns_label(f"{stack.project}-{env.name}")
    files: dict[str, str] = {
        f"{root}/namespace.yaml": dump(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
    }
    changes = _overrides(stack, env, options, out)
    extra_secrets = changes.pop("secrets")
    secrets = secret_placeholders(stack, extra_secrets)
    for path, secret in secrets.items():
        files[f"{root}/{path}"] = dump(secret)
    kustomization: Manifest = {
        "apiVersion": _KUSTOMIZE_API,
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": ["../../base", "namespace.yaml", *sorted(secrets)],
    }
    kustomization.update({key: found for key, found in changes.items() if found})
    pinned = _images(stack, images)
    if pinned:
        kustomization["images"] = pinned
    text = dump(kustomization)
    files[f"{root}/{KUSTOMIZATION}"] = _with_setters(text, _services_by_image(stack, images))
    return files


# The fields of a Kustomize `images:` entry Flux's image automation (Setters strategy) may
# rewrite, and the part of its ImagePolicy's choice each takes (render.kube_meta.image_setter).
_SETTER_PARTS = {"newName": "name", "newTag": "tag", "digest": "digest"}


def _services_by_image(stack: Stack, images: Mapping[str, str]) -> dict[str, str]:
    """The repository an `images:` entry is matched by (its `name`) -> the service it is for."""
    out: dict[str, str] = {}
    for name in sorted(images):
        service = stack.services.get(name)
        if service is not None:
            out.setdefault(_repository(image_of(stack, service)), name)
    return out


def _with_setters(text: str, services: Mapping[str, str]) -> str:
    """`text` (a dumped kustomization) with Flux's setter marker as the comment of each
    image field Conveyor writes, naming the ImagePolicy of the service (`render flux`'s:
    one per service, in flux-system): Conveyor's commits and Flux's image automation then
    write the same fields, and a diff shows one or the other. YAML dumpers write no
    comments, hence this pass over the lines of the `images:` block."""
    if not services:
        return text
    lines = text.split("\n")
    start = lines.index("images:") + 1
    end = start
    while end < len(lines) and lines[end].startswith(("- ", "  ")):
        end += 1
    entry: list[int] = []  # the lines of the entry being read

    def mark(indexes: list[int]) -> None:
        fields = {lines[i][2:].split(":", 1)[0]: i for i in indexes}
        at = fields.get("name")
        service = services.get(lines[at].split(":", 1)[1].strip()) if at is not None else None
        if service is None:
            return
        for key, part in _SETTER_PARTS.items():
            if key in fields:
                lines[fields[key]] += f" # {image_setter(service, part)}"

    for index in range(start, end):
        if lines[index].startswith("- ") and entry:
            mark(entry)
            entry = []
        entry.append(index)
    if entry:
        mark(entry)
    return "\n".join(lines)


def secrets_to_encrypt(
    stack: Stack,
    environments: Mapping[str, EnvironmentSpec] | None,
    secret_texts: Mapping[str, str],
    rendering: Rendering,
) -> dict[str, str]:
    """Each SOPS-ready Secret of `rendering` (path -> YAML) filled with its values, to be
    encrypted by the caller before anything is written: `secret_texts` holds each Compose
    secret's value, the environments' overrides the rest."""
    envs = dict(environments or {}) or {
        DEFAULT_ENVIRONMENT: EnvironmentSpec(name=DEFAULT_ENVIRONMENT)
    }
    out: dict[str, str] = {}
    for env in envs.values():
        root = f"overlays/{dns_label(env.name)}/"
        overrides = {name: o.environment for name, o in env.overrides.items()}
        for path, values in secret_values(stack, overrides, secret_texts).items():
            placeholder = rendering.files.get(root + path)
            if placeholder is None:
                continue  # an overlay not rendered (--env)
            out[root + path] = dump(filled(yaml.safe_load(placeholder), values))
    return out


def _overrides(
    stack: Stack, env: EnvironmentSpec, options: KubeOptions, out: Collected
) -> dict[str, Any]:
    """What an environment's `overrides` change, as Kustomization fields (`replicas`,
    `configMapGenerator` merges, `patches`) plus `secrets`: service -> more secret keys."""
    replicas: list[Manifest] = []
    generators: list[Manifest] = []
    patches: list[Manifest] = []
    secrets: dict[str, set[str]] = {}
    for name, override in sorted(env.overrides.items()):
        service = stack.services.get(name)
        if service is None:
            continue  # spec.overrides reports overrides of unknown services
        if override.replicas is not None and service.autoscale is not None:
            out.warn(
                ("services", name, "x-conveyor", "autoscale"),
                f"environment {env.name} sets replicas {override.replicas}, but the "
                "autoscaler decides: the override is not rendered",
            )
        elif override.replicas is not None and kind_of(stack, service) != "Job":
            replicas.append({"name": dns_label(name), "count": override.replicas})
        if override.ports and options.traffic == "gateway":
            patches.extend(gateway_port_patches(service, dict(override.ports)))
        plain, secret = env_override(service, override.environment)
        if plain:
            generators.append(Generator(env_map_name(service), literals=plain).entry("merge"))
        if secret:
            secrets[name] = set(secret)
    return {
        "replicas": replicas,
        "configMapGenerator": generators,
        "patches": patches,
        "secrets": secrets,
    }


def _images(stack: Stack, images: Mapping[str, str]) -> list[Manifest]:
    out: list[Manifest] = []
    for name, ref in sorted(images.items()):
        service = stack.services.get(name)
        if service is None:
            continue
        entry: Manifest = {"name": _repository(image_of(stack, service))}
        # `repo@sha256:…`, `repo:tag` or both (`repo:tag@sha256:…`: the digest is what runs,
        # the tag says which build it is, as Flux's image automation writes them too).
        named, _, digest = ref.partition("@")
        repo, tag = _split_tag(named)
        entry["newName"] = repo
        if tag:
            entry["newTag"] = tag
        if digest:
            entry["digest"] = digest
        out.append(entry)
    return out


def _split_tag(ref: str) -> tuple[str, str | None]:
    head, sep, tail = ref.rpartition(":")
    if sep and "/" not in tail:
        return head, tail
    return ref, None


def _repository(image: str) -> str:
    return _split_tag(image.split("@", 1)[0])[0]
