"""Service `volumes:` and `secrets:` in their short and long syntaxes."""

from __future__ import annotations

from typing import Any, Literal

from conveyor.model.stack import ConfigMount, SecretMount, VolumeMount
from conveyor.spec.context import Context
from conveyor.spec.values import to_bool
from conveyor.spec.yamlpos import YamlPath

# Options Compose accepts after the second colon; only "ro" changes what Conveyor does,
# the rest are engine hints (SELinux labels, propagation, macOS consistency).
_SHORT_MODES = {
    "ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated",
    "shared", "slave", "private", "rshared", "rslave", "rprivate",
}  # fmt: skip
MountType = Literal["volume", "bind", "tmpfs"]
# A table rather than a tuple so the lookup also gives mypy the Literal type.
_MOUNT_TYPES: dict[str, MountType] = {"volume": "volume", "bind": "bind", "tmpfs": "tmpfs"}
SECRETS_DIR = "/run/secrets"


def volume_mounts(ctx: Context, path: YamlPath, raw: Any) -> tuple[VolumeMount, ...]:
    mounts: list[VolumeMount] = []
    for index, item in enumerate(raw or ()):
        try:
            mount = _short(ctx, item) if isinstance(item, str) else _long(ctx, item)
        except ValueError as exc:
            ctx.error((*path, index), str(exc))
            continue
        mounts.append(mount)
    return tuple(mounts)


def is_host_path(source: str) -> bool:
    """Compose's rule: a source that looks like a path is a bind mount, else a volume name."""
    return source.startswith(("/", ".", "~"))


def _short(ctx: Context, spec: str) -> VolumeMount:
    parts = spec.split(":")
    if len(parts) > 3 or any(not part for part in parts[:2]):
        raise ValueError(f"invalid volume {spec!r} (expected [SOURCE:]TARGET[:MODE])")
    options = [option for option in (parts[2] if len(parts) == 3 else "").split(",") if option]
    for option in options:
        if option not in _SHORT_MODES:
            raise ValueError(f"unknown volume mode '{option}' in {spec!r}")
    read_only = "ro" in options
    if len(parts) == 1:  # anonymous volume: only a container path
        return VolumeMount(type="volume", target=_target(parts[0]), read_only=read_only)
    source, target = parts[0], _target(parts[1])
    if is_host_path(source):
        return VolumeMount(
            type="bind", source=str(ctx.resolve(source)), target=target, read_only=read_only
        )
    return VolumeMount(type="volume", source=source, target=target, read_only=read_only)


def _long(ctx: Context, item: dict[str, Any]) -> VolumeMount:
    kind = item.get("type", "volume")
    mount_type = _MOUNT_TYPES.get(kind)
    if mount_type is None:
        raise ValueError(f"volume type '{kind}' is not supported (use volume, bind or tmpfs)")
    if not item.get("target"):
        raise ValueError("a volume needs 'target' (the path in the container)")
    source = item.get("source") or None
    if mount_type == "bind":
        if source is None:
            raise ValueError("a bind mount needs 'source' (the host path)")
        source = str(ctx.resolve(source))
    elif mount_type == "tmpfs":
        source = None
    read_only = to_bool(item.get("read_only", False))
    return VolumeMount(
        type=mount_type, source=source, target=_target(item["target"]), read_only=read_only
    )


def _target(target: str) -> str:
    if not target.startswith("/"):
        raise ValueError(f"container path must be absolute, got '{target}'")
    return target


def secret_mounts(ctx: Context, path: YamlPath, raw: Any) -> tuple[SecretMount, ...]:
    mounts: list[SecretMount] = []
    for index, item in enumerate(raw or ()):
        if isinstance(item, str):
            mounts.append(SecretMount(source=item, target=f"{SECRETS_DIR}/{item}"))
            continue
        source = item.get("source")
        if not source:
            ctx.error((*path, index), "a secret needs 'source' (a top-level secret name)")
            continue
        target = item.get("target") or source
        # Compose mounts relative targets under /run/secrets, like the short syntax.
        if not target.startswith("/"):
            target = f"{SECRETS_DIR}/{target}"
        mounts.append(SecretMount(source=source, target=target))
    return tuple(mounts)


def config_mounts(ctx: Context, path: YamlPath, raw: Any) -> tuple[ConfigMount, ...]:
    """Service `configs:`; each lands at `target` (default `/<name>`). The file or text
    comes from the top-level config, filled in once every config is known."""
    mounts: list[ConfigMount] = []
    for index, item in enumerate(raw or ()):
        if isinstance(item, str):
            mounts.append(ConfigMount(source=item, target=f"/{item}"))
            continue
        source = item.get("source")
        if not source:
            ctx.error((*path, index), "a config needs 'source' (a top-level config name)")
            continue
        target = str(item.get("target") or f"/{source}")
        if not target.startswith("/"):
            ctx.error((*path, index, "target"), f"container path must be absolute, got '{target}'")
            continue
        for key in ("uid", "gid"):
            if item.get(key) is not None:
                ctx.warn(
                    (*path, index, key),
                    "ignored: without Swarm the file keeps its owner on the host "
                    "(written configs are readable by every user)",
                )
        mode = ctx.optional(item, "mode", (*path, index), _mode, None)
        mounts.append(ConfigMount(source=str(source), target=target, mode=mode))
    return tuple(mounts)


def _mode(value: object) -> int:
    """Compose writes modes as octal strings ("0440") or as numbers (YAML reads 0440 as an
    octal int already)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value), 8)
    except ValueError:
        raise ValueError(f"must be an octal file mode such as '0440', got {value!r}") from None
