"""The HAProxy configuration each provisioned host starts with (the haproxy role installs the
text as it is; it is not templated again in Jinja). Pure: no I/O.

    app_haproxy_cfg()                  app (and monitor) hosts: the router's own configuration
                                       with no routes yet, the fleet's router then rewrites it
    edge_haproxy_cfg(stack, fleet)     edge hosts: render.edge_haproxy over the app hosts
    edge_role_conflicts(fleet, file)   hosts that are both app and edge (refused)

Both use the same run directory, stats port and user (model.provision's HOST_HAPROXY_*), so
the router finds a host's admin socket where provisioning put it (docs/provision.md).
"""

from __future__ import annotations

from pathlib import Path

from conveyor.errors import SpecError
from conveyor.model.edge import EdgeConfig
from conveyor.model.fleet import Fleet
from conveyor.model.provision import (
    HOST_HAPROXY_RUN_DIR,
    HOST_HAPROXY_STATS_PORT,
    HOST_HAPROXY_USER,
)
from conveyor.model.routing import RouterConfig
from conveyor.model.stack import Stack
from conveyor.plan.edge import edge_config
from conveyor.render.edge_haproxy import render_edge
from conveyor.render.haproxy import render

RUN_DIR = Path(HOST_HAPROXY_RUN_DIR)


def app_haproxy_cfg() -> str:
    """What an app host's HAProxy runs before the router has given it routes: the router's
    global and defaults sections and its stats/exporter listener on 127.0.0.1."""
    config = RouterConfig(stats_port=HOST_HAPROXY_STATS_PORT)
    return render(config, RUN_DIR, user=HOST_HAPROXY_USER) + "\n"


def edge_haproxy_cfg(stack: Stack | None, fleet: Fleet) -> str:
    """The edge over `fleet`'s app hosts for the ports `stack` publishes (none without a
    stack: an edge that serves nothing yet, with its stats listener)."""
    if stack is None:
        config = EdgeConfig(stats_port=HOST_HAPROXY_STATS_PORT)
    else:
        config = edge_config(stack, fleet.with_role("app"), stats_port=HOST_HAPROXY_STATS_PORT)
    return render_edge(config, RUN_DIR, user=HOST_HAPROXY_USER) + "\n"


def edge_role_conflicts(fleet: Fleet, file: str) -> list[SpecError]:
    """A host cannot be both `app` and `edge`: its own HAProxy (the router's) and the edge
    would both listen on the published ports. `file` is where the fleet was written."""
    return [
        SpecError(
            file,
            host.line,
            f"hosts.{host.name}.roles",
            "a host is either app or edge, not both: the edge and the app host's own HAProxy "
            "would both listen on the published ports (give the edge a host of its own)",
        )
        for host in fleet.hosts
        if host.has_role("app") and host.has_role("edge")
    ]
