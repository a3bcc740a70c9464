"""Log shipping for a project: where its log records are copied (Elasticsearch/OpenSearch,
Loki) and the LogSink the collector hands each stored batch to (docs/logs-shipping.md).

The destinations come from conveyor.yaml's `logs:` section for environments the GitOps server
runs, and, for a project brought up with `conveyor up` alone, from the file the environment
variable CONVEYOR_LOGS_CONFIG names (the same `logs:` section, in a file of its own).

    spec = logs_config_for_up(project.environ, compose_dir)      # or config.logs
    shipping = open_project_shipping(spec, paths.state_dir, project.environ, timeline)
    ...                                                             # the collector writes to it
    if shipping is not None:
        shipping.stop()
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conveyor.errors import SpecError
from conveyor.model.events import Reporter
from conveyor.model.log_shipping import LogShipping
from conveyor.observe.logs.ship import Shipping, open_shipping
from conveyor.spec.log_shipping import load_logs_file

LOGS_CONFIG_ENV = "CONVEYOR_LOGS_CONFIG"


def logs_config_for_up(environ: Mapping[str, str], base: Path) -> LogShipping:
    """The destinations of a project without a server: the `logs:` file CONVEYOR_LOGS_CONFIG
    names (relative to `base`, the compose file's directory), or none when it is unset.
    Raises SpecError(s) for a missing or wrong file."""
    written = environ.get(LOGS_CONFIG_ENV, "").strip()
    if not written:
        return LogShipping()
    path = Path(written).expanduser()
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise SpecError(
            written, None, "", f"no such file (named by {LOGS_CONFIG_ENV}; relative to {base})"
        )
    return load_logs_file(path, written)


def open_project_shipping(
    spec: LogShipping,
    state_dir: Path,
    environ: Mapping[str, str],
    reporter: Reporter | None = None,
) -> Shipping | None:
    """The project's shippers, started, their buffers under `state_dir/logs-ship/`; None when
    nothing is to be shipped. Raises ShipError (a secret's variable unset, a buffer held by
    another process)."""
    if spec.empty:
        return None
    shipping = open_shipping(spec, state_dir, environ, reporter)
    shipping.start()
    return shipping
