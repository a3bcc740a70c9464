"""What a destination's answer means for each record sent (pure): accepted, to be sent again,
or refused for good. Shared by the Elasticsearch and Loki formats.

Whole-request statuses (the body did not get as far as per-record handling):

| answer | meaning |
|---|---|
| connection refused, reset, timeout | retry every record |
| 408, 429, 5xx | retry every record (after `Retry-After` when given) |
| 401, 403, 404, 407 | retry: a wrong URL or credential is fixed by a person, not by dropping logs |
| 413 | too large: send the request in halves; a single record too large is refused |
| other 4xx | refused for good: the same request would fail the same way |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_RETRY = frozenset({408, 429})
_MISCONFIGURED = frozenset({401, 403, 404, 407})
_TOO_LARGE = 413


@dataclass(frozen=True)
class Request:
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class Rejection:
    position: int  # of the record in the request
    status: int
    reason: str


@dataclass(frozen=True)
class Verdict:
    """Positions in neither `retry` nor `rejected` were accepted."""

    retry: tuple[int, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    problem: str | None = None  # what went wrong, for events and stats
    retry_after: float | None = None  # seconds the server asked for
    split: bool = False  # the request was too large: send it in halves
    status: int | None = None  # the HTTP status, None without an answer
    duplicates: int = 0  # accepted records the destination already had (a resend)


def retry_all(
    count: int, problem: str, status: int | None = None, after: float | None = None
) -> Verdict:
    return Verdict(retry=tuple(range(count)), problem=problem, status=status, retry_after=after)


def reject_all(count: int, status: int, reason: str) -> Verdict:
    return Verdict(
        rejected=tuple(Rejection(i, status, reason) for i in range(count)),
        problem=reason,
        status=status,
    )


def whole_request(count: int, answer: Answer, reason: str) -> Verdict | None:
    """The verdict of a non-2xx answer about the request as a whole (see the table above);
    None for a 2xx, which the format reads record by record."""
    status = answer.status
    if 200 <= status < 300:
        return None
    what = f"HTTP {status}: {reason}" if reason else f"HTTP {status}"
    if status in _RETRY or status >= 500:
        return retry_all(count, what, status, retry_after(answer.headers))
    if status in _MISCONFIGURED:
        return retry_all(count, f"{what} (check the URL and the credentials)", status)
    if status == _TOO_LARGE:
        if count > 1:
            return Verdict(split=True, problem=what, status=status)
        return reject_all(count, status, f"a single record is too large ({what})")
    return reject_all(count, status, what)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds (a number, or an HTTP date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
