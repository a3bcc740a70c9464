"""`conveyor render kubernetes` and `conveyor render --check`: a Kustomize base and one
overlay per conveyor.yaml environment from the project's compose files (docs/kubernetes.md).

    inputs = kube_rendering(compose_files, conveyor_file, environ, cwd, env=…, options=…)
    written = write_rendering(inputs.rendering, out_dir)   # files, byte-identical per input
    verdicts = validate_rendering(out_dir, inputs.rendering)   # kubectl kustomize per dir
    findings = inputs.findings()                            # kube-score-style, per service

Warnings (what Kubernetes cannot express as the compose file says) name file:line.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.app.project import find_compose_files
from conveyor.errors import SpecError
from conveyor.host.sops import SopsError, encrypt_yaml
from conveyor.host.validate import Validation, check
from conveyor.model.environments import EnvironmentSpec
from conveyor.render.kubernetes import (
    DEFAULT_ENVIRONMENT,
    KUSTOMIZE,
    SOPS_ANNOTATION,
    Finding,
    KubeOptions,
    Rendering,
    check_manifests,
    render_kubernetes,
    secrets_to_encrypt,
)
from conveyor.spec.compose import Loaded, load_compose
from conveyor.spec.conveyor_file import load_conveyor_file
from conveyor.spec.yamlpos import SpecWarning


@dataclass(frozen=True)
class KubeRendering:
    project: str
    environments: tuple[str, ...]  # the overlays rendered
    rendering: Rendering
    warnings: tuple[SpecWarning, ...]  # the compose file's keys Kubernetes does differently

    def findings(self) -> list[Finding]:
        return check_manifests(self.rendering.base)


def config_texts(loaded: Loaded) -> dict[str, str]:
    """The text of each `file:` config (render/ reads no files)."""
    texts: dict[str, str] = {}
    for name, config in loaded.stack.configs.items():
        if config.file is None:
            continue
        try:
            texts[name] = Path(config.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # the renderer warns that the config is not rendered
    return texts


def secret_texts(loaded: Loaded, environ: Mapping[str, str]) -> dict[str, str]:
    """Each Compose secret's value: its file's content, or its environment variable's."""
    texts: dict[str, str] = {}
    for name, secret in loaded.stack.secrets.items():
        if secret.file is not None:
            try:
                texts[name] = Path(secret.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue  # left empty in the Secret, as without encryption
        elif secret.environment is not None and secret.environment in environ:
            texts[name] = environ[secret.environment]
    return texts


def kube_rendering(
    compose_files: Sequence[Path],
    conveyor_file: Path,
    environ: Mapping[str, str],
    cwd: Path,
    *,
    project_name: str | None = None,
    env: str | None = None,
    options: KubeOptions | None = None,
    images: Mapping[str, str] | None = None,
    encrypt: bool = False,
    flags: Mapping[str, object] | None = None,
) -> KubeRendering:
    """Render the project. `conveyor_file` (relative to `cwd`) gives the environments when it
    exists (else one overlay, `default`); `env` renders that overlay only; `images`: service
    -> image reference for the rendered overlays. `options`: how to render (default:
    conveyor.yaml's `kubernetes:` section), with `flags` (KubeOptions fields) over it.
    `encrypt`: fill the overlays' Secrets with
    the values the compose file and environment give and encrypt them with sops to
    `options.age_recipients` (plaintext only in memory and on sops's stdin). Raises
    SpecError(s), NoComposeFile, SopsError, CommandError."""
    files = find_compose_files(compose_files, environ, cwd)
    loaded = load_compose(files, project_name, environ, cwd=cwd)
    environments: dict[str, EnvironmentSpec] = {}
    settings = KubeOptions()
    if (cwd / conveyor_file).is_file():
        config = load_conveyor_file(cwd / conveyor_file, str(conveyor_file))
        environments = dict(config.environments)
        settings = config.kubernetes
    options = (options or settings).model_copy(update=dict(flags or {}))
    names = tuple(sorted(environments)) or (DEFAULT_ENVIRONMENT,)
    if env is not None and env not in names:
        raise SpecError(
            str(conveyor_file),
            None,
            "environments",
            f"no environment '{env}' (known: {', '.join(names)})",
        )
    rendered = tuple(n for n in names if env is None or n == env)
    rendering = render_kubernetes(
        loaded.stack,
        environments,
        options,
        config_texts(loaded),
        {name: images for name in rendered} if images else None,
        only=env,
    )
    if encrypt:
        recipients = options.age_recipients
        if not recipients:
            raise SopsError("encrypting Secrets needs at least one age recipient")
        plain = secrets_to_encrypt(
            loaded.stack, environments, secret_texts(loaded, environ), rendering
        )
        sealed = {path: encrypt_yaml(text, recipients) for path, text in sorted(plain.items())}
        rendering = dataclasses.replace(rendering, files={**rendering.files, **sealed})
    warnings = tuple(loaded.warning(w.path, w.message) for w in rendering.warnings)
    warnings += _writable_roots(loaded)
    ordered = tuple(sorted(warnings, key=lambda w: (w.file, w.line or 0, w.field, w.message)))
    return KubeRendering(loaded.stack.project, rendered, rendering, ordered)


def _writable_roots(loaded: Loaded) -> tuple[SpecWarning, ...]:
    """`read_only: false` written out is the opposite of the hardened default: say so. (The
    model cannot tell it from an absent key, so the written document is read here.)"""
    data = loaded.doc.data if loaded.doc is not None else None
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return ()
    return tuple(
        loaded.warning(
            ("services", name, "read_only"),
            "read_only: false: the container's root filesystem stays writable "
            "(readOnlyRootFilesystem false)",
        )
        for name, raw in sorted(services.items())
        if isinstance(raw, dict) and raw.get("read_only") is False
    )


def write_rendering(rendering: Rendering, out: Path) -> list[Path]:
    """Write every file under `out`, replacing what an earlier rendering left in `base/` and
    `overlays/` (so a removed service leaves no manifest behind), except that a Secret already
    encrypted with SOPS is kept where this rendering has only its empty placeholder (a plain
    re-render must not undo `--encrypt-secrets` or a hand-run `sops --encrypt`). Returns the
    paths written."""
    sealed = {
        path.relative_to(out).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted((out / "overlays").glob("*/secrets/*.yaml"))
        if _encrypted(path)
    }
    for part in ("base", "overlays"):
        if (out / part).is_dir():
            shutil.rmtree(out / part)
    written: list[Path] = []
    for relative, rendered in sorted(rendering.files.items()):
        kept = relative in sealed and SOPS_ANNOTATION in rendered
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sealed[relative] if kept else rendered, encoding="utf-8")
        written.append(path)
    return written


def _encrypted(path: Path) -> bool:
    try:
        return "\nsops:\n" in path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def validate_rendering(out: Path, rendering: Rendering) -> list[Validation]:
    """`kubectl kustomize` on the base and every overlay written under `out`. Raises
    CommandError when kubectl cannot run."""
    return [check(KUSTOMIZE, out / directory) for directory in rendering.directories()]
