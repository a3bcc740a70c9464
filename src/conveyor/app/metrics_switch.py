"""Whether a project's metrics stack runs (docs/metrics.md, "On and off"): unless
`conveyor up --no-metrics` said so (kept as `<state>/metrics/off`) or CONVEYOR_METRICS is
0/false/off/no. The metrics use cases start the stack by it, and the agent's alert receiver
listens by it (no Alertmanager delivers while the stack is off); the server reads the
variable for its own stack. Apart from app/metrics so that app/alerts, which it imports, can
ask too."""

from __future__ import annotations

from collections.abc import Mapping

from conveyor.deploy.project import ProjectPaths
from conveyor.observe.metrics.supervisor import MetricsLayout

OFF_SETTING = "CONVEYOR_METRICS"  # 0/false/off/no turns metrics off like --no-metrics


def layout(paths: ProjectPaths) -> MetricsLayout:
    """The project's metrics stack: `<state>/metrics`."""
    return MetricsLayout(paths.state_dir / "metrics")


def turned_off(environ: Mapping[str, str]) -> bool:
    """CONVEYOR_METRICS says off."""
    return environ.get(OFF_SETTING, "").strip().lower() in ("0", "false", "off", "no")


def enabled(paths: ProjectPaths, environ: Mapping[str, str]) -> bool:
    """Metrics run unless `up --no-metrics` said so (kept) or CONVEYOR_METRICS is off."""
    return not turned_off(environ) and not layout(paths).off_file.exists()


def set_enabled(paths: ProjectPaths, on: bool) -> None:
    """What `conveyor up [--no-metrics]` says, kept for the next commands and the agent."""
    off = layout(paths).off_file
    if on:
        off.unlink(missing_ok=True)
    else:
        off.parent.mkdir(parents=True, exist_ok=True)
        off.write_text("metrics turned off by `conveyor up --no-metrics`\n")
