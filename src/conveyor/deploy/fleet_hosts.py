"""The app hosts a project ran on, remembered in its state directory (`fleet-hosts.json`,
beside `fleet-volumes.json`): what lets a deploy reach a host after conveyor.yaml stopped
naming it, to take the project off it (plan.fleet_retire, docs/fleet.md "Hosts that leave
the fleet").

A JSON file rather than a table of the state database: it is written by the fleet runtime
(deploy.fleet_runtime), which holds no store, from the same places and in the same way as
`fleet-volumes.json` (read, changed, replaced whole); it is a small snapshot of a few hosts,
not a history; and a person can read (or fix) it by hand when a host is gone for good.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from conveyor.plan.fleet_retire import RememberedHost


def read_hosts(path: Path) -> dict[str, RememberedHost]:
    """Host name -> how it was reached and what it last ran; empty when there is no such
    file, or it cannot be read."""
    with contextlib.suppress(ValueError, OSError, AttributeError, ValidationError):
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(name): RememberedHost.model_validate(entry) for name, entry in raw.items()}
    return {}


def write_hosts(path: Path, hosts: Mapping[str, RememberedHost]) -> None:
    write_snapshot(path, {name: hosts[name].model_dump(mode="json") for name in sorted(hosts)})


def write_snapshot(path: Path, data: Mapping[str, Any]) -> None:
    """One of the fleet's JSON files in the state directory (this one, `fleet-volumes.json`)
    replaced whole: a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
    scratch.replace(path)
