"""Where the CLI finds a Conveyor server, and the variables that say so: constants only, so
the CLI's option declarations can name them without importing the API client."""

from __future__ import annotations

DEFAULT_SERVER = "http://127.0.0.1:7780"
SERVER_VARIABLE = "CONVEYOR_SERVER"
TOKEN_VARIABLE = "CONVEYOR_TOKEN"  # noqa: S105 — the variable's name, not a secret
