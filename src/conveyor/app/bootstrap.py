"""`conveyor bootstrap`: check, and install unless asked only to check, what this host needs:
the host's packages, dockerd and base image, then the browser-test image `conveyor/selenium`
and its copy in Conveyor's registry."""

from __future__ import annotations

from collections.abc import Callable

from conveyor.ci.run.prepare import registry_from_env
from conveyor.provision.bootstrap import (
    SystemCommands,
    host_config,
    plan_bootstrap,
    plan_browser_image,
)
from conveyor.provision.bootstrap import run_bootstrap as _run


def run_bootstrap(check_only: bool, report: Callable[[str, str], None]) -> bool:
    """True when every component is ready; `report(step, what)` is called as each is checked."""
    config = host_config()
    commands = SystemCommands()
    steps = [
        *plan_bootstrap(config, commands),
        *plan_browser_image(config, commands, registry_from_env()),
    ]
    return _run(check_only=check_only, report=report, steps=steps)
