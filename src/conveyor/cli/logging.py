"""Logging set-up; only entry points (cli, server) call this."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from conveyor.model.events import Event


def configure_logging(json_lines: bool, quiet: bool = False) -> None:
    """structlog to stderr: JSON lines for the agent's log file, readable lines on a terminal.
    `quiet` keeps library chatter below warnings out of interactive commands."""
    level = logging.WARNING if quiet else logging.INFO
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def log_events(json_lines: bool) -> Callable[[Event], None]:
    """A timeline subscriber writing each event as a structured log line (the agent's log)."""
    configure_logging(json_lines=json_lines)
    log = structlog.get_logger("conveyor")

    def write(e: Event) -> None:
        fields = {k: v for k, v in e.flat().items() if v is not None and k != "message"}
        level = fields.pop("level", "info")
        getattr(log, level)(e.message, **fields)

    return write
