"""`conveyor plan` in a directory as a Compose user has it: compose.yaml and its override
read without -f, profiles from --profile or COMPOSE_PROFILES, and a warning naming file:line
for each setting Conveyor accepts but does not do. Nothing is started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

COMPOSE = """\
services:
  app:
    image: {image}
    command: ["python", "-c", "import time; time.sleep(600)"]
    tty: true
  debug:
    image: {image}
    profiles: [debug]
"""
OVERRIDE = """\
services:
  app:
    develop:
      watch: [{action: sync, path: ., target: /app}]
"""


def conveyor(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        cwd=cwd,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_plan_reads_the_override_applies_profiles_and_warns(
    tmp_path: Path, base_image: str
) -> None:
    (tmp_path / "compose.yaml").write_text(COMPOSE.format(image=base_image))
    (tmp_path / "compose.override.yaml").write_text(OVERRIDE)

    plain = conveyor(tmp_path, "plan")
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.splitlines()[:2] == [
        "warning: compose.override.yaml:3: services.app.develop: ignored: file watching is "
        "for `docker compose watch`",
        "warning: compose.yaml:5: services.app.tty: ignored: replicas have no terminal",
    ]
    assert "debug" not in plain.stdout

    def services(proc: subprocess.CompletedProcess[str]) -> set[str]:
        assert proc.returncode == 0, proc.stderr
        # steps of no service (the project network's) are left out
        return {step["service"] for step in json.loads(proc.stdout)["steps"] if step["service"]}

    assert services(conveyor(tmp_path, "--profile", "debug", "plan", "--json")) == {"app", "debug"}
    assert services(conveyor(tmp_path, "plan", "--json", COMPOSE_PROFILES="debug")) == {
        "app",
        "debug",
    }
    # -f names the files: no override then, and the JSON carries no warning about it
    only = json.loads(conveyor(tmp_path, "-f", "compose.yaml", "plan", "--json").stdout)
    assert only["warnings"] == [
        "compose.yaml:5: services.app.tty: ignored: replicas have no terminal"
    ]


def test_an_error_names_the_file_as_typed(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  app:\n    image: nginx\n")
    (tmp_path / "compose.override.yaml").write_text("services:\n  app:\n    restart: sometimes\n")
    proc = conveyor(tmp_path, "plan")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: compose.override.yaml:3: services.app.restart: must be one of 'no', 'always', "
        "'on-failure', 'unless-stopped' (or 'on-failure:N'), got 'sometimes'"
    )
