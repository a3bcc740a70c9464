"""Who manages a project: the record a `conveyor server` leaves in the state directory of each
environment project it deploys, so a local command knows there is one writer already (issue 9,
item 8; docs/server.md, "One writer").

Pure data: `store.owner_file` reads and writes it, `app.ownership` finds it for a command and
`app.one_writer` decides what the command does about it.
"""

from __future__ import annotations

from typing import Literal

from conveyor.model.frozen import Frozen

OWNER_FILE = "server.json"  # in the project's state directory (`.conveyor/<project>/`)


class ServerOwner(Frozen):
    """The Conveyor server that manages one environment project on this host.

    Written when the server first opens the project (before its first deploy) and again on
    every start of the server with its new PID and address; never removed: a stopped server
    still owns its projects, its next start resumes them."""

    version: Literal[1] = 1
    project: str  # the Compose project (`<repository>-<environment>`)
    environment: str  # its environment in conveyor.yaml
    server_url: str  # where the server's API answers (a loopback URL for a wildcard bind)
    pid: int  # the server's process
    # The process's start time (clock ticks after boot, /proc/PID/stat): a PID the system
    # gave to another process since the server ended does not pass for the server.
    pid_start: int | None = None
    data_dir: str  # the server's data directory (absolute)
    source: str  # the repository the server follows (`conveyor server --source`)
    branch: str | None = None  # what feeds the environment: a branch …
    promote_from: str | None = None  # … or promotion from another environment
    work_tree: str  # the checkout the project's compose files are read from
    compose_files: tuple[str, ...]  # absolute paths, merged in order
    state_dir: str  # the project's state directory (absolute): this record's directory
