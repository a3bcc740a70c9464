"""Compose configs as files a replica mounts read-only.

A `file:` config is the host file itself. A config written as text (`content:`, or an
`environment:` value read when the files were loaded) is written once per distinct text
into the project's state directory, named after its digest: replicas of an older release
keep the file they started with while a rollout starts the new ones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from conveyor.model.stack import Service
from conveyor.store.database import private_dir

DEFAULT_MODE = 0o444


def config_files(service: Service, directory: Path) -> dict[str, str]:
    """Container path -> host file for each of the service's configs."""
    out: dict[str, str] = {}
    for mount in service.configs:
        if mount.file is not None:
            out[mount.target] = mount.file
        elif mount.content is not None:
            mode = DEFAULT_MODE if mount.mode is None else mount.mode
            digest = hashlib.sha256(f"{mode:o}\0{mount.content}".encode()).hexdigest()[:16]
            path = directory / f"{mount.source}-{digest}"
            if not path.exists():
                private_dir(directory)
                scratch = path.with_suffix(".tmp")
                scratch.unlink(missing_ok=True)  # left read-only by a crash while writing
                scratch.write_text(mount.content, encoding="utf-8")
                scratch.chmod(mode)
                scratch.replace(path)  # whole or absent, even if we crash while writing
            out[mount.target] = str(path)
    return out
