"""`conveyor bootstrap`: check, and install unless asked only to check, what this host needs."""

from __future__ import annotations

from collections.abc import Callable

from conveyor.provision.bootstrap import run_bootstrap as _run


def run_bootstrap(check_only: bool, report: Callable[[str, str], None]) -> bool:
    """True when every component is ready; `report(step, what)` is called as each is checked."""
    return _run(check_only=check_only, report=report)
