"""`conveyor render flux`: the deploy repository's Flux, observability and canary files
(docs/flux.md).

    inputs = flux_inputs(repo_url, compose_files, conveyor_file, environ, cwd)
    written = write_files(render_flux(inputs), out_dir)

Every environment of conveyor.yaml is rendered from its compose file (the environment's
`compose:`, or the `-f` files given) with the environment's overrides applied, as the server
deploys it on a Docker host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from conveyor.app import kube_delivery
from conveyor.errors import ConveyorError, SpecError
from conveyor.model.environments import ConveyorConfig
from conveyor.model.flux import FluxSettings
from conveyor.model.stack import Stack
from conveyor.render import flux, kube_observe
from conveyor.render.kube_meta import KubeEnvironment
from conveyor.spec.compose import load_compose
from conveyor.spec.conveyor_file import load_conveyor_file
from conveyor.spec.overrides import apply_overrides
from conveyor.spec.values import suggest
from conveyor.spec.yamlpos import SpecWarning


class FluxRenderError(ConveyorError):
    """The files could not be written."""


def flux_inputs(
    repo_url: str,
    compose_files: Sequence[Path],
    conveyor_file: Path,
    environ: Mapping[str, str],
    cwd: Path,
    project_name: str | None = None,
    elasticsearch_url: str | None = None,
) -> flux.FluxInputs:
    """What `render_flux` needs, from conveyor.yaml and the compose files. Raises
    SpecError(s) (with file:line) for either file."""
    config = load_conveyor_file(cwd / conveyor_file, str(conveyor_file))
    loaded: dict[tuple[Path, ...], Stack] = {}
    envs: list[KubeEnvironment] = []
    for name, env in sorted(config.environments.items()):
        files = tuple(compose_files) or (Path(env.compose),)
        if files not in loaded:
            loaded[files] = load_compose(files, project_name, environ, cwd=cwd).stack
        base = loaded[files]
        envs.append(KubeEnvironment(base.project, name, apply_overrides(base, env)))
    _check_image_services(config.flux, envs)
    project = envs[0].project
    return flux.FluxInputs(
        repo_url=repo_url,
        project=project,
        environments=tuple(envs),
        settings=config.flux,
        promoted=frozenset(n for n, e in config.environments.items() if e.promote_from),
        overlays={
            n: kube_delivery.overlay_of(e) for n, e in config.environments.items() if e.deploy
        },
        es=kube_observe.es_output(config.logs, elasticsearch_url),
    )


def _check_image_services(settings: FluxSettings, envs: Sequence[KubeEnvironment]) -> None:
    """`flux.images.services` names services of the compose file."""
    if settings.images is None:
        return
    known = {name for env in envs for name in env.stack.services}
    for index, name in enumerate(settings.images.services):
        if name not in known:
            hint = suggest(name, known) or f" (it has {', '.join(sorted(known))})"
            line = settings.line("images", "services", str(index))
            raise SpecError(
                settings.file,
                line,
                f"flux.images.services.{index}",
                f"service '{name}' is not in the compose file{hint}",
            )


def render_flux(inputs: flux.FluxInputs) -> dict[str, str]:
    return flux.files(inputs)


def write_files(files: Mapping[str, str], out: Path) -> list[Path]:
    """Writes each file under `out` (directories made as needed); files of ours that a new
    render no longer has are left for the user (git shows them)."""
    written: list[Path] = []
    try:
        for name, text in sorted(files.items()):
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as e:
        raise FluxRenderError(f"cannot write the Flux files into {out}: {e}") from None
    return written


def deploy_target_warnings(repo_url: str, conveyor_file: Path, cwd: Path) -> list[SpecWarning]:
    """`deploy_mismatches` for conveyor.yaml at `cwd / conveyor_file`."""
    config = load_conveyor_file(cwd / conveyor_file, str(conveyor_file))
    return deploy_mismatches(repo_url, config)


def deploy_mismatches(repo_url: str, config: ConveyorConfig) -> list[SpecWarning]:
    """Where the Flux being rendered (`--repo`, conveyor.yaml `flux.branch`) would watch
    another repository or branch than a `target: kubernetes` environment's `deploy:` names:
    the server commits its releases there, so Flux would never see them. One warning per
    environment and key, at its conveyor.yaml line (pure)."""
    out: list[SpecWarning] = []
    watched = _same_repo(repo_url)
    branch = config.flux.branch
    for name, env in sorted(config.environments.items()):
        if env.target != "kubernetes" or env.deploy is None:
            continue
        if _same_repo(env.deploy.repo) != watched:
            out.append(
                SpecWarning(
                    env.file,
                    env.line("deploy", "repo"),
                    f"environments.{name}.deploy.repo",
                    f"the server commits {name}'s releases to {env.deploy.repo}, but this "
                    f"Flux watches {repo_url} (--repo): Flux would never apply them",
                )
            )
        if env.deploy.branch != branch:
            out.append(
                SpecWarning(
                    env.file,
                    env.line("deploy", "branch"),
                    f"environments.{name}.deploy.branch",
                    f"the server commits {name}'s releases to branch {env.deploy.branch}, but "
                    f"this Flux watches branch {branch} (flux.branch"
                    + (f", line {line}" if (line := config.flux.line("branch")) else "")
                    + "): Flux would never apply them",
                )
            )
    return out


_SCP = re.compile(r"^(?P<user>[^@/:]+@)?(?P<host>[^/:]+):(?P<path>(?!//).*)$")


def _same_repo(url: str) -> str:
    """A repository address in one spelling: `git@host:a/b.git`, `ssh://git@host/a/b` and
    `ssh://git@host/a/b.git/` compare equal; so do `/srv/x.git` and `file:///srv/x.git`."""
    url = url.strip()
    if url.startswith("file://"):
        url = url[len("file://") :]
    elif "://" not in url and not url.startswith("/"):
        found = _SCP.match(url)
        if found is not None:
            url = f"ssh://{found['user'] or ''}{found['host']}/{found['path'].lstrip('/')}"
    url = url.rstrip("/")
    if url.endswith(".git"):
        url = url[: -len(".git")]
    scheme, sep, rest = url.partition("://")
    if sep:
        host, slash, path = rest.partition("/")
        url = f"{scheme.lower()}://{host.lower()}{slash}{path}"
    return url
