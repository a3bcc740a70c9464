"""A pin: what a rollback through the server writes into git, so git and the running state
agree. `.conveyor/pins/<environment>.json` on the environment's branch holds the environment at
one commit until a push deletes or changes the file (`spec.pin_file` reads and writes it)."""

from __future__ import annotations

from conveyor.model.frozen import Frozen

PIN_DIR = ".conveyor/pins"


class Pin(Frozen):
    commit: str  # the commit the environment runs while the pin is there (hex, may be short)
    release: int | None = None  # the environment's release rolled back to, when the server wrote it
    by: str | None = None  # who asked (the API token's name)
    at: float | None = None  # when, seconds since the epoch


def pin_path(environment: str) -> str:
    """The pin file of `environment`, a path in the repository."""
    return f"{PIN_DIR}/{environment}.json"
