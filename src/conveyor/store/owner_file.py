"""The server-ownership record of a project (`model.ownership.ServerOwner`) on disk, and the
index that finds it by project name.

The record is `server.json` in the project's state directory: it travels with the state it
speaks for. A command run with `-p NAME` from another directory would not look there, so each
record also has an entry in a per-user index, `$XDG_STATE_HOME/conveyor/projects/NAME`
(default `~/.local/state/conveyor/projects/`), a file holding the state directory's path. The
record is the truth; an index entry whose record is gone is ignored.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from conveyor.errors import StoreError
from conveyor.model.ownership import OWNER_FILE, ServerOwner
from conveyor.store.database import private_dir

INDEX_VARIABLE = "XDG_STATE_HOME"


def owner_path(state_dir: Path) -> Path:
    return state_dir / OWNER_FILE


def read_owner(state_dir: Path) -> ServerOwner | None:
    """The record in `state_dir`, None when there is none. A file that is not a record is an
    error naming it: guessing would either let a second writer in or lock the project."""
    path = owner_path(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"{path}: cannot read who manages the project ({e.strerror})") from e
    try:
        return ServerOwner.model_validate_json(text)
    except ValidationError as e:
        raise StoreError(
            f"{path}: not a Conveyor server record ({e.error_count()} problem(s)); "
            "delete it if no server manages this project"
        ) from e


def write_owner(owner: ServerOwner) -> bool:
    """Write `owner` into its state directory unless it says that already; True if written.
    Atomic: a reader sees the old record or the new one."""
    state_dir = Path(owner.state_dir)
    if _read_quietly(state_dir) == owner:
        return False
    private_dir(state_dir)
    _write_atomic(owner_path(state_dir), owner.model_dump_json(indent=2) + "\n")
    return True


def index_dir(environ: Mapping[str, str]) -> Path:
    state_home = environ.get(INDEX_VARIABLE)
    if state_home:
        base = Path(state_home)
    else:
        base = Path(environ.get("HOME") or Path.home()) / ".local" / "state"
    return base / "conveyor" / "projects"


def index_owner(owner: ServerOwner, environ: Mapping[str, str]) -> None:
    """Point the index's entry for `owner.project` at its state directory."""
    entry = index_dir(environ) / owner.project
    if _entry(entry) == Path(owner.state_dir):
        return
    private_dir(entry.parent)
    _write_atomic(entry, owner.state_dir + "\n")


def indexed(project: str, environ: Mapping[str, str]) -> ServerOwner | None:
    """The record the index names for `project` (None: no entry, or its record is gone)."""
    if not project or "/" in project or project.startswith("."):
        return None
    state_dir = _entry(index_dir(environ) / project)
    if state_dir is None:
        return None
    owner = _read_quietly(state_dir)
    return owner if owner is not None and owner.project == project else None


def indexed_all(environ: Mapping[str, str]) -> list[ServerOwner]:
    """Every record the index names (those still there)."""
    root = index_dir(environ)
    if not root.is_dir():
        return []
    found = [indexed(entry.name, environ) for entry in sorted(root.iterdir())]
    return [o for o in found if o is not None]


def _entry(path: Path) -> Path | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return Path(text) if text.startswith("/") else None


def _read_quietly(state_dir: Path) -> ServerOwner | None:
    """The record, or None when it is missing or unreadable (for the index and for deciding
    whether to write: the strict reading is `read_owner`)."""
    try:
        return read_owner(state_dir)
    except StoreError:
        return None


def _write_atomic(path: Path, text: str) -> None:
    # A temporary file of its own (mode 0600) per writer: the server's threads may claim the
    # same project at once, and a shared name would let one rename the other's half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
