"""Ansible's own reading of an inventory file: `ansible-inventory -i PATH --list` (JSON), so
INI, YAML and inventory plugins all mean what they mean to Ansible. spec.fleet turns it into
a Fleet."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conveyor.errors import SpecError
from conveyor.host.command import run, tool_path

INSTALL_HINT = "it comes with ansible-core (pip install ansible-core; scripts/venv.sh)"


def list_inventory(path: Path, name: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """The inventory at `path` as `ansible-inventory --list` prints it. Raises SpecError
    naming `name` (default: `path`) with Ansible's message when it cannot read the file."""
    file = str(path) if name is None else name
    if not path.exists():
        raise SpecError(file, None, "inventory", "no such inventory file")
    result = run(
        (_program(), "-i", str(path), "--list"),
        timeout=timeout,
        # Ansible warns, not fails, on an inventory it cannot parse: make that an error.
        env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", "ANSIBLE_NOCOLOR": "1"},
        install_hint=INSTALL_HINT,
    )
    if not result.ok:
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln or "failed" in ln.lower()]
        message = (errors or lines or [f"exit code {result.returncode}"])[0]
        message = re.sub(r"^\[(WARNING|ERROR)\]:?\s*", "", message)
        raise SpecError(file, None, "inventory", f"Ansible cannot read it: {message}")
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as e:
        raise SpecError(
            file, None, "inventory", f"ansible-inventory printed no JSON: {e}"
        ) from None
    if not isinstance(data, dict):
        raise SpecError(file, None, "inventory", "ansible-inventory printed no mapping")
    return data


def _program() -> str:
    # Next to this interpreter first: the venv's ansible-core, even when the venv is not on PATH.
    return tool_path("ansible-inventory", venv_first=True) or "ansible-inventory"
