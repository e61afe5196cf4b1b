"""structlog setup: key-value events, JSON lines off a terminal, readable on one.

Under journald every line is prefixed with its syslog level (``<3>`` … ``<7>``) so the
journal keeps the priority; journald does not parse JSON (ecosystem.md §3).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_SYSLOG_PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}


def _journald_prefix(_: Any, method: str, event: str) -> str:
    return f"<{_SYSLOG_PRIORITY.get(method, 6)}>{event}"


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog (and stdlib logging of libraries) once per process."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: list[Any]
    if use_json:
        renderer = [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
        if os.environ.get("JOURNAL_STREAM"):
            renderer.append(_journald_prefix)
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=not os.environ.get("NO_COLOR"))]
    structlog.configure(
        processors=processors + renderer,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
