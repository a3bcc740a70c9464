"""Nagios external commands, worded (pure). Nagios reads one command per line from its command
file, fields separated by `;`: a field may hold neither a `;` nor a line break, so free text
(an author, a comment) has them replaced."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[;\r\n\x00-\x1f]+")


def _text(value: str) -> str:
    return _UNSAFE.sub(" ", value).strip() or "-"


def _name(value: str) -> str:
    if _UNSAFE.search(value) or not value.strip():
        raise ValueError(f"not a Nagios name: {value!r}")
    return value


def schedule_downtime(
    host: str,
    check: str | None,
    start: float,
    end: float,
    author: str,
    comment: str,
) -> str:
    """A fixed downtime of one check (or of the host itself and nothing else, `check` None)
    from `start` to `end` (UNIX seconds): no notification is sent for it meanwhile."""
    if end <= start:
        raise ValueError("a downtime ends after it starts")
    begin, finish = int(start), int(end)
    # fixed=1: in effect from start to end; trigger 0: none; duration is used only when not fixed
    tail = f"{begin};{finish};1;0;{finish - begin};{_text(author)};{_text(comment)}"
    if check is None:
        return f"SCHEDULE_HOST_DOWNTIME;{_name(host)};{tail}"
    return f"SCHEDULE_SVC_DOWNTIME;{_name(host)};{_name(check)};{tail}"


def cancel_downtime(downtime_id: int, *, host: bool = False) -> str:
    return f"DEL_{'HOST' if host else 'SVC'}_DOWNTIME;{int(downtime_id)}"
