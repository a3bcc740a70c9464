"""`conveyor render kubernetes` and `conveyor render --check`: a Kustomize base and one
overlay per conveyor.yaml environment from the project's compose files (docs/kubernetes.md).

    inputs = kube_rendering(compose_files, conveyor_file, environ, cwd, env=…, options=…)
    written = write_rendering(inputs.rendering, out_dir)   # files, byte-identical per input
    verdicts = validate_rendering(out_dir, inputs.rendering)   # kubectl kustomize per dir
    findings = inputs.findings()                            # kube-score-style, per service

Warnings (what Kubernetes cannot express as the compose file says) name file:line.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.app.project import find_compose_files
from conveyor.errors import SpecError
from conveyor.host.validate import Validation, check
from conveyor.model.environments import EnvironmentSpec
from conveyor.render.kubernetes import (
    DEFAULT_ENVIRONMENT,
    KUSTOMIZE,
    Finding,
    KubeOptions,
    Rendering,
    check_manifests,
    render_kubernetes,
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


def _config_texts(loaded: Loaded) -> dict[str, str]:
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
) -> KubeRendering:
    """Render the project. `conveyor_file` (relative to `cwd`) gives the environments when it
    exists (else one overlay, `default`); `env` renders that overlay only; `images`: service
    -> image reference for the rendered overlays. Raises SpecError(s), NoComposeFile."""
    files = find_compose_files(compose_files, environ, cwd)
    loaded = load_compose(files, project_name, environ, cwd=cwd)
    environments: dict[str, EnvironmentSpec] = {}
    if (cwd / conveyor_file).is_file():
        environments = dict(
            load_conveyor_file(cwd / conveyor_file, str(conveyor_file)).environments
        )
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
        _config_texts(loaded),
        {name: images for name in rendered} if images else None,
        only=env,
    )
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
    `overlays/` (so a removed service leaves no manifest behind). Returns the paths."""
    for part in ("base", "overlays"):
        if (out / part).is_dir():
            shutil.rmtree(out / part)
    written: list[Path] = []
    for relative, text in sorted(rendering.files.items()):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def validate_rendering(out: Path, rendering: Rendering) -> list[Validation]:
    """`kubectl kustomize` on the base and every overlay written under `out`. Raises
    CommandError when kubectl cannot run."""
    return [check(KUSTOMIZE, out / directory) for directory in rendering.directories()]
