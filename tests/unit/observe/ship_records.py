"""Log records for the shipping tests."""

from __future__ import annotations

from conveyor.model.logs import LogLabels, LogLevel, LogRecord, Stream

T0 = 1_765_015_200.0  # 2025-12-06T10:00:00Z


def record(
    n: int,
    *,
    ts: float | None = None,
    service: str | None = "web",
    replica: str | None = "web-1",
    stream: Stream = "stdout",
    level: LogLevel | None = "info",
    fields: dict[str, str] | None = None,
    message: str | None = None,
    environment: str | None = "production",
) -> LogRecord:
    return LogRecord(
        ts=T0 + n if ts is None else ts,
        labels=LogLabels(
            project="shop",
            environment=environment,
            service=service,
            replica=replica,
            release=7,
            container=f"c0ffee{n % 3}",
            stream=stream,
        ),
        message=f"line {n}" if message is None else message,
        level=level,
        fields=fields or {},
        id=n,
    )
