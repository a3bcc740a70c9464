"""conveyor.yaml's inventory, read once per version of the file (app.project.Project.fleet).

Every command, and the server for every environment and tick, opens the project's engine,
and the engine needs the fleet: the YAML parsed, and, when `inventory:` names an Ansible
inventory, `ansible-inventory` run (a second or so). The resolved Fleet is kept per file,
with the file's (mtime, size) and the inventory file's: a change to either reads again.
Not seen: a change only to files the inventory reads in turn (group_vars, a dynamic
inventory script's output).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from conveyor.app.provision import resolve_fleet
from conveyor.model.fleet import Fleet
from conveyor.spec.fleet import load_fleet_file

Stamp = tuple[int, int] | None  # (mtime in ns, size); None: no such file


@dataclass(frozen=True)
class _Read:
    stamp: Stamp
    inventory: Path | None
    inventory_stamp: Stamp
    fleet: Fleet


_READ: dict[Path, _Read] = {}
_LOCK = threading.Lock()


def file_stamp(path: Path) -> Stamp:
    """`path`'s version as far as a reader can tell cheaply: (mtime in ns, size)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def read_fleet(path: Path, name: str) -> Fleet:
    """The fleet conveyor.yaml at `path` names (`name`: the file as errors call it), resolved
    through Ansible when it names an inventory; empty when the file is absent. Raises
    SpecError(s) naming the file (nothing is kept then)."""
    stamp = file_stamp(path)
    with _LOCK:
        known = _READ.get(path)
    if (
        known is not None
        and known.stamp == stamp
        and (known.inventory is None or file_stamp(known.inventory) == known.inventory_stamp)
    ):
        return known.fleet
    written = load_fleet_file(path, name).fleet
    inventory = (
        Path(written.inventory_file) if written.inventory_file and not written.hosts else None
    )
    # The inventory's stamp before it is read: a change while Ansible reads it is seen next time.
    inventory_stamp = file_stamp(inventory) if inventory is not None else None
    fleet = resolve_fleet(written)
    with _LOCK:
        _READ[path] = _Read(stamp, inventory, inventory_stamp, fleet)
    return fleet
