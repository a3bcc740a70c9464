"""The shipped playbook and roles are ansible-lint clean (production profile), offline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conveyor.provision.ansible.run import PLAYBOOK, playbook_dir


def test_playbook_and_roles_lint_clean() -> None:
    lint = Path(sys.executable).parent / "ansible-lint"
    program = str(lint) if lint.exists() else shutil.which("ansible-lint")
    assert program, "ansible-lint is in the dev extra: bash scripts/venv.sh"
    done = subprocess.run(
        [program, "--offline", "--nocolor", "--profile", "production", PLAYBOOK],
        cwd=playbook_dir(),
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout + done.stderr


def test_every_role_the_playbook_names_is_shipped() -> None:
    roles = {p.name for p in (playbook_dir() / "roles").iterdir() if (p / "tasks").is_dir()}
    assert roles == {"base", "docker", "haproxy", "agent", "node_exporter", "nrpe", "firewall"}
    text = (playbook_dir() / PLAYBOOK).read_text()
    assert all(f"role: {r}\n" in text for r in roles)
