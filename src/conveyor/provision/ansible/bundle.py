"""The shipped playbook packed for a host that runs it itself (`ansible-playbook -c local`):
AWS hosts get it in their launch template's user data (docs/aws.md).

    playbook_bundle(inventory)   base64 of a tar.gz: playbook/... and inventory/conveyor.yml

The archive is the same bytes for the same files (sorted, no times, no owners, gzip without
a timestamp), so `conveyor aws render` stays byte-identical and a new launch template version
(which replaces the hosts) comes only from a change to the roles or the inventory.
"""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
from pathlib import Path

from conveyor.provision.ansible.run import INVENTORY_FILE, playbook_dir


def playbook_bundle(inventory: str) -> str:
    out = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        root = playbook_dir()
        for path in sorted(p for p in root.rglob("*") if p.is_file() and _shipped(p)):
            _add(tar, f"playbook/{path.relative_to(root).as_posix()}", path.read_bytes(), path)
        _add(tar, f"inventory/{INVENTORY_FILE}", inventory.encode(), None)
    return base64.b64encode(out.getvalue()).decode("ascii")


def _shipped(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix != ".pyc"


def _add(tar: tarfile.TarFile, name: str, data: bytes, source: Path | None) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    executable = source is not None and source.stat().st_mode & 0o111
    info.mode = 0o755 if executable else 0o644
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))
