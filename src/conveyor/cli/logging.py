"""Logging set-up; only entry points (cli, server) call this."""

from __future__ import annotations

import logging
import sys

import structlog


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
