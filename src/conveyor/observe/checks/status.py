"""Nagios's status file (`status.dat`) read into `model.checks` (pure: text in, data out).

The file is a sequence of blocks, `name {`, `\tkey=value` lines, `\t}`: one `info`, one
`programstatus`, a `hoststatus` per host, a `servicestatus` per check, a `hostdowntime` /
`servicedowntime` per scheduled downtime, and comments. Nagios rewrites it whole every
`status_update_interval` seconds (under a temporary name, then renamed), so a reader sees one
complete version. Custom variables appear as `_NAME=MODIFIED;VALUE`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from conveyor.model.checks import CHECK_KINDS, CheckKind, CheckState, CheckStatus, Downtime

SERVICE_STATES: dict[str, CheckState] = {
    "0": "OK",
    "1": "WARNING",
    "2": "CRITICAL",
    "3": "UNKNOWN",
}
HOST_STATES: dict[str, CheckState] = {"0": "UP", "1": "DOWN", "2": "UNREACHABLE"}
_KINDS: dict[str, CheckKind] = {kind: kind for kind in CHECK_KINDS}


@dataclass(frozen=True)
class Block:
    kind: str
    fields: dict[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)

    def number(self, key: str) -> int:
        try:
            return int(self.fields.get(key, "0"))
        except ValueError:
            return 0

    def time(self, key: str) -> float | None:
        """A UNIX time field; None for Nagios's 0 (never)."""
        value = self.number(key)
        return float(value) if value > 0 else None

    def custom(self, name: str) -> str | None:
        """A custom variable's value (`_NAME=0;value`); None when absent or `-`."""
        raw = self.fields.get(f"_{name}")
        if raw is None:
            return None
        value = raw.split(";", 1)[1] if ";" in raw else raw
        return value if value and value != "-" else None


def blocks(text: str) -> Iterator[Block]:
    """Every block of a status file, in order."""
    kind: str | None = None
    fields: dict[str, str] = {}
    for raw in text.splitlines():
        row = raw.strip()
        if not row or row.startswith("#"):
            continue
        if kind is None:
            if row.endswith("{"):
                kind, fields = row[:-1].strip(), {}
            continue
        if row == "}":
            yield Block(kind, fields)
            kind = None
            continue
        key, sep, value = row.partition("=")
        if sep:
            fields[key] = value


@dataclass
class StatusFile:
    """A parsed status file."""

    created: float | None = None
    pid: int | None = None
    statuses: list[CheckStatus] = field(default_factory=list)
    downtimes: list[Downtime] = field(default_factory=list)


def parse_status(text: str) -> StatusFile:
    out = StatusFile()
    for block in blocks(text):
        if block.kind == "info":
            out.created = block.time("created")
        elif block.kind == "programstatus":
            out.pid = block.number("nagios_pid") or None
        elif block.kind == "hoststatus":
            out.statuses.append(_status(block, host=True))
        elif block.kind == "servicestatus":
            out.statuses.append(_status(block, host=False))
        elif block.kind in ("hostdowntime", "servicedowntime"):
            out.downtimes.append(_downtime(block))
    return out


def _status(block: Block, *, host: bool) -> CheckStatus:
    checked = block.get("has_been_checked") == "1"
    states = HOST_STATES if host else SERVICE_STATES
    state: CheckState = states.get(block.get("current_state"), "UNKNOWN") if checked else "PENDING"
    return CheckStatus(
        host=block.get("host_name"),
        check=None if host else block.get("service_description"),
        service=None if host else block.custom("CONVEYOR_SERVICE"),
        kind=_KINDS.get(block.custom("CONVEYOR_KIND") or ""),
        state=state,
        state_type="hard" if block.get("state_type", "1") == "1" else "soft",
        output=block.get("plugin_output"),
        last_check=block.time("last_check"),
        last_state_change=block.time("last_state_change"),
        attempt=block.number("current_attempt") or 1,
        max_attempts=block.number("max_attempts") or 1,
        flapping=block.get("is_flapping") == "1",
        in_downtime=block.number("scheduled_downtime_depth") > 0,
        acknowledged=block.get("problem_has_been_acknowledged") == "1",
    )


def _downtime(block: Block) -> Downtime:
    return Downtime(
        id=block.number("downtime_id"),
        host=block.get("host_name"),
        check=block.get("service_description") or None,
        start=float(block.number("start_time")),
        end=float(block.number("end_time")),
        author=block.get("author"),
        comment=block.get("comment"),
        in_effect=block.get("is_in_effect") == "1",
    )
