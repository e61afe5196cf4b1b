"""structlog setup: key-value events, JSON lines off a terminal, readable on one.

Under journald every line is prefixed with its syslog level (``<3>`` … ``<7>``) so the
journal keeps the priority; journald does not parse JSON (docs/operations/logging.md).

Tracebacks never carry local variables: a payload an attacker sent (or a password a
frame held) would otherwise land in the journal. Every line also passes through
`redact_secrets`, which blanks the value of every secret the process has read.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

from edge.secrets import redact

_SYSLOG_PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}


def _journald_prefix(_: Any, method: str, event: str) -> str:
    return f"<{_SYSLOG_PRIORITY.get(method, 6)}>{event}"


def redact_secrets(_: Any, __: str, line: str) -> str:
    """The last processor: the rendered line with every known secret value blanked."""
    return redact(line)


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
        no_locals = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        renderer = [
            structlog.processors.ExceptionRenderer(no_locals),
            structlog.processors.JSONRenderer(),
            redact_secrets,
        ]
        if os.environ.get("JOURNAL_STREAM"):
            renderer.append(_journald_prefix)
    else:
        renderer = [
            structlog.dev.ConsoleRenderer(
                colors=not os.environ.get("NO_COLOR"),
                exception_formatter=structlog.dev.plain_traceback,
            ),
            redact_secrets,
        ]
    structlog.configure(
        processors=processors + renderer,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
