"""GitLab's human-friendly durations (`timeout`, `start_in`, `artifacts:expire_in`).

GitLab parses these with ChronicDuration in its strict mode (`use_complete_matcher`): the
whole text must be numbers, units and the filler word "and"; nothing is silently skipped.
Accepted forms: "3600" (seconds), "1 week", "3 mins 4 sec", "2 hrs 20 min", "2h20min",
"1h 30m", "6 mos 1 day", "47 yrs 6 mos and 4d", "1.5 hours", "1:30" (m:s), "1:30:00" (h:m:s).
ChronicDuration's calendar is fixed: a month is 30 days and a year 365 days.

`expire_in` also takes "never". GitLab caps a job `timeout` at one month (ActiveSupport's
month, 30.436875 days) and `start_in` at one week; `check_limit` applies those caps.
"""

from __future__ import annotations

import re

_MINUTE = 60.0
_HOUR = 3600.0
_DAY = 86400.0
_UNITS: dict[str, float] = {}
for _names, _seconds in (
    (("s", "sec", "secs", "second", "seconds"), 1.0),
    (("m", "min", "mins", "minute", "minutes"), _MINUTE),
    (("h", "hr", "hrs", "hour", "hours"), _HOUR),
    (("d", "day", "days"), _DAY),
    (("w", "wk", "wks", "week", "weeks"), 7 * _DAY),
    (("mo", "mos", "month", "months"), 30 * _DAY),
    (("y", "yr", "yrs", "year", "years"), 365 * _DAY),
):
    for _name in _names:
        _UNITS[_name] = _seconds

# One "number [unit]" term; terms are separated by spaces, commas or "and".
_TERM = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)")
_SEPARATOR = re.compile(r"(?:\s|,|\band\b)*")
_CLOCK = re.compile(r"(\d+):(\d{1,2})(?::(\d{1,2}))?")

TIMEOUT_LIMIT = 2629746.0  # Project::MAX_BUILD_TIMEOUT = 1.month in ActiveSupport seconds
START_IN_LIMIT = 7 * _DAY
HINT = "use e.g. '30 minutes', '1h 30m', '2 days' or a number of seconds"


def parse_duration(text: str) -> float:
    """Seconds in a GitLab duration. Raises ValueError with a message for a SpecError."""
    cleaned = text.strip().lower()
    clock = _CLOCK.fullmatch(cleaned)
    if clock is not None:
        first, second, third = clock.groups()
        if third is None:  # ChronicDuration reads "1:30" as minutes:seconds
            return int(first) * _MINUTE + int(second)
        return int(first) * _HOUR + int(second) * _MINUTE + int(third)
    total = 0.0
    terms = 0
    pos = _SEPARATOR.match(cleaned, 0)
    index = pos.end() if pos else 0
    while index < len(cleaned):
        term = _TERM.match(cleaned, index)
        if term is None:
            raise ValueError(f"'{text}' is not a duration ({HINT})")
        number, unit = term.groups()
        if unit and unit not in _UNITS:
            raise ValueError(f"'{text}' is not a duration: unknown unit '{unit}' ({HINT})")
        total += float(number) * _UNITS.get(unit, 1.0)  # a bare number counts seconds
        terms += 1
        gap = _SEPARATOR.match(cleaned, term.end())
        index = gap.end() if gap else term.end()
    if terms == 0:
        raise ValueError(f"'{text}' is not a duration ({HINT})")
    return total


def parse_expire_in(text: str) -> float | None:
    """`artifacts:expire_in` in seconds; None for "never" (the artifacts are kept)."""
    if text.strip().lower() == "never":
        return None
    return parse_duration(text)


def check_limit(seconds: float, limit: float, what: str) -> None:
    if seconds > limit:
        raise ValueError(f"must not exceed {what}")
