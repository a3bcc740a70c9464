"""Configuration: Compose `configs` and non-secret environment as ConfigMaps (made by
Kustomize generators, so a change of content renames the map and rolls the pods), and
Compose `secrets` plus secret-looking environment as Secrets that are never plaintext here:
each overlay gets a SOPS-ready Secret per secret with its keys and empty values, to be filled
and encrypted with `sops --encrypt --in-place` (`.sops.yaml` holds the age recipients). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from conveyor.model.stack import Service, Stack
from conveyor.render.kubernetes.names import dns_label
from conveyor.render.kubernetes.objects import Collected, Manifest, manifest, meta

# Variable names whose values are credentials: they go to a Secret, never a ConfigMap.
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY", re.IGNORECASE
)
# A URL carrying a password (`postgresql://user:pw@db/x`) is a credential as well.
_URL_PASSWORD = re.compile(r"://[^/@:\s]+:[^/@\s]+@")
SOPS_ANNOTATION = "conveyor.dev/sops"
SOPS_PENDING = "fill stringData, then encrypt: sops --encrypt --in-place FILE"


@dataclass(frozen=True)
class Generator:
    """One Kustomize configMapGenerator entry: `literals`, or `files` (key -> path under the
    kustomization's directory)."""

    name: str
    literals: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def entry(self, behavior: str | None = None) -> Manifest:
        out: Manifest = {"name": self.name}
        if behavior:
            out["behavior"] = behavior
        if self.literals:
            out["literals"] = [f"{k}={v}" for k, v in sorted(self.literals.items())]
        if self.files:
            out["files"] = [f"{k}={p}" for k, p in sorted(self.files.items())]
        return out


def is_secret(name: str, value: str) -> bool:
    return bool(_SECRET_NAME.search(name) or _URL_PASSWORD.search(value))


def env_map_name(service: Service) -> str:
    return f"{dns_label(service.name)}-env"


def env_secret_name(service: Service) -> str:
    return f"{dns_label(service.name)}-env-secret"


def config_map_name(config: str) -> str:
    return f"config-{dns_label(config)}"


def secret_name(secret: str) -> str:
    return f"secret-{dns_label(secret)}"


def main_port(service: Service) -> int | None:
    """The port the app listens on for its main traffic (Conveyor passes it as PORT)."""
    port = service.app_port() if service.networking == "project" else service.routing.port
    if port is None and service.ports:
        port = service.ports[0].target
    return port


def environment(service: Service) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) environment of a service. Like Conveyor's own deploys, a service with a
    main port gets PORT and HOST (twelve-factor) unless the file sets them."""
    plain: dict[str, str] = {}
    port = main_port(service)
    if port is not None and service.routed:
        # inside its pod the app listens on every interface, as under Conveyor
        plain.update({"PORT": str(port), "HOST": "0.0.0.0"})  # noqa: S104
    secret: dict[str, str] = {}
    for name, value in service.environment.items():
        if is_secret(name, value):
            secret[name] = value
        else:
            plain[name] = value
    return plain, secret


def base_config(
    stack: Stack, texts: Mapping[str, str], out: Collected
) -> tuple[list[Generator], dict[str, str]]:
    """The base's ConfigMap generators and the files they read (path under base -> text).

    `texts`: the content of each `file:` config (the caller reads files; render does no I/O).
    """
    generators: list[Generator] = []
    files: dict[str, str] = {}
    for name, config in sorted(stack.configs.items()):
        text = config.content if config.content is not None else texts.get(name)
        if text is None:
            out.warn(("configs", name), "not rendered: its file could not be read as text")
            continue
        key = dns_label(name)
        path = f"configs/{key}"
        files[path] = text
        generators.append(Generator(config_map_name(name), files={key: path}))
    for service in sorted(stack.services.values(), key=lambda s: s.name):
        plain, secret = environment(service)
        if plain:
            generators.append(Generator(env_map_name(service), literals=plain))
        if secret:
            names = ", ".join(sorted(secret))
            verb = "looks" if len(secret) == 1 else "look"
            out.warn(
                ("services", service.name, "environment"),
                f"{names} {verb} like credentials: rendered into the Secret "
                f"{env_secret_name(service)} (SOPS-ready, values left empty), not a ConfigMap",
            )
    return generators, files


def env_override(
    service: Service, values: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """An environment's overrides of a service's variables, split like `environment`."""
    plain = {k: v for k, v in values.items() if not is_secret(k, v)}
    secret = {k: v for k, v in values.items() if is_secret(k, v)}
    return plain, secret


def secret_placeholders(
    stack: Stack, extra_env_secrets: Mapping[str, set[str]]
) -> dict[str, Manifest]:
    """Per overlay: file name -> a Secret with every key and empty values (never a value from
    the files). `extra_env_secrets`: service -> more secret variable names (an environment's
    overrides)."""
    out: dict[str, Manifest] = {}
    for name in sorted(stack.secrets):
        key = dns_label(name)
        out[f"secrets/{secret_name(name)}.yaml"] = _placeholder(secret_name(name), [key])
    for service in sorted(stack.services.values(), key=lambda s: s.name):
        _plain, secret = environment(service)
        keys = sorted(set(secret) | extra_env_secrets.get(service.name, set()))
        if keys:
            file = f"secrets/{env_secret_name(service)}.yaml"
            out[file] = _placeholder(env_secret_name(service), keys)
    return out


def secret_values(
    stack: Stack, overrides: Mapping[str, Mapping[str, str]], secret_texts: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """The values of the files `secret_placeholders` makes (file -> key -> value), for
    encrypting them: `secret_texts` holds each Compose secret's value (the caller reads files
    and the environment), `overrides` an environment's variables per service. A key whose
    value is unknown is absent."""
    out: dict[str, dict[str, str]] = {}
    for name in sorted(stack.secrets):
        if name in secret_texts:
            out[f"secrets/{secret_name(name)}.yaml"] = {dns_label(name): secret_texts[name]}
    for service in sorted(stack.services.values(), key=lambda s: s.name):
        _plain, secret = environment(service)
        _more, extra = env_override(service, overrides.get(service.name, {}))
        values = {**secret, **extra}
        if values:
            out[f"secrets/{env_secret_name(service)}.yaml"] = values
    return out


def filled(placeholder: Manifest, values: Mapping[str, str]) -> Manifest:
    """A placeholder Secret with its values (to be encrypted at once, never written)."""
    keys = placeholder["stringData"]
    return {
        **placeholder,
        "metadata": {"name": placeholder["metadata"]["name"]},
        "stringData": {key: values.get(key, "") for key in keys},
    }


def _placeholder(name: str, keys: list[str]) -> Manifest:
    return manifest(
        "v1",
        "Secret",
        {**meta(name), "annotations": {SOPS_ANNOTATION: SOPS_PENDING}},
        type="Opaque",
        stringData=dict.fromkeys(keys, ""),
    )


def sops_config(recipients: tuple[str, ...]) -> Manifest:
    """`.sops.yaml` at the output's root: encrypt the Secrets' data with age."""
    return {
        "creation_rules": [
            {
                "path_regex": r"overlays/[^/]+/secrets/.*\.yaml$",
                "encrypted_regex": "^(data|stringData)$",
                "age": ",".join(recipients),
            }
        ]
    }
