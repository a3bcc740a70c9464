"""Run the shipped playbook (playbook/site.yml and its roles) over a fleet with ansible-runner.

Each run gets a private data directory of its own (removed afterwards): the rendered inventory
goes in it, next to the user's inventory file when the fleet came from one (theirs first, so
its groups and variables keep working; ours adds Conveyor's variables). Every runner event is
translated (events.py) and handed to `on_event` as it happens; the result is Ansible's recap
per host with the first failed task and its message. A host that fails or cannot be reached
does not stop the others: that is how Ansible runs a play (no any_errors_fatal).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import ansible_runner

from conveyor.errors import ConveyorError
from conveyor.model.fleet import Fleet
from conveyor.model.provision import ProvisionEvent, ProvisionResult
from conveyor.provision.ansible.events import RecapBuilder, translate

PLAYBOOK = "site.yml"
INVENTORY_FILE = "conveyor.yml"


def playbook_dir() -> Path:
    """Where the playbook and its roles are (package data)."""
    return Path(str(resources.files("conveyor.provision.ansible") / "playbook"))


def run_playbook(
    fleet: Fleet,
    inventory: str,
    *,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    on_event: Callable[[ProvisionEvent], None] | None = None,
    environ: Mapping[str, str] | None = None,
    extra_vars: Mapping[str, Any] | None = None,
) -> ProvisionResult:
    """Run site.yml over `fleet` with `inventory` (render.ansible_inventory's text).
    `environ` is added to Ansible's environment (ANSIBLE_HOST_KEY_CHECKING, say)."""
    if not fleet:
        raise ConveyorError(
            "no hosts to provision: write 'hosts:' or 'inventory:' in conveyor.yaml"
        )
    if limit is not None and fleet.host(limit) is None:
        known = ", ".join(h.name for h in fleet.hosts)
        raise ConveyorError(f"--limit {limit}: no such host in the fleet (hosts: {known})")
    recap = RecapBuilder()

    def handle(event: Mapping[str, Any]) -> bool:
        translated = translate(event)
        recap.add(event, translated)
        if translated is not None and on_event is not None:
            on_event(translated)
        return True  # keep the event in the artifacts (which are removed with the directory)

    started = time.monotonic()
    private = Path(tempfile.mkdtemp(prefix="conveyor-provision-"))
    try:
        ours = private / "inventory" / INVENTORY_FILE
        ours.parent.mkdir(mode=0o700)
        ours.write_text(inventory, encoding="utf-8")
        sources = [str(ours)] if fleet.inventory_file is None else [fleet.inventory_file, str(ours)]
        flags = [f for f, on in (("--check", check), ("--diff", diff)) if on]
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(playbook_dir()),
            playbook=PLAYBOOK,
            inventory=sources,
            limit=limit,
            cmdline=" ".join(flags) or None,
            extravars=dict(extra_vars or {}),
            envvars=_environment(environ),
            event_handler=handle,
            quiet=True,
        )
        hosts = recap.recap([h.name for h in fleet.hosts])
        if not hosts:  # no host in the recap: the play never ran (a syntax or inventory error)
            raise ConveyorError(f"ansible-playbook did not run ({runner.status}): {_tail(runner)}")
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return ProvisionResult(hosts=hosts, check=check, seconds=time.monotonic() - started)


def _environment(environ: Mapping[str, str] | None) -> dict[str, str]:
    # ansible-playbook comes with ansible-core in the interpreter's environment, which may
    # not be on PATH (`.venv/bin/conveyor` run without activating the venv).
    bin_dir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    return {
        "PATH": f"{bin_dir}{os.pathsep}{path}" if path else bin_dir,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",  # an inventory it cannot read stops the run
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PIPELINING": "1",  # one SSH round trip per task instead of three
        "ANSIBLE_ROLES_PATH": str(playbook_dir() / "roles"),
        **(environ or {}),
    }


def _tail(runner: Any) -> str:
    try:
        text = str(runner.stdout.read())
    except (OSError, ValueError, AttributeError):
        return "no output"
    return text.strip()[-2000:] or "no output"
