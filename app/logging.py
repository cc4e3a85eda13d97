"""Structured logs (JSON lines in production). Log ids and outcomes, never health data."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import TypeGuard

import structlog


def configure_logging(*, json: bool, level: str) -> None:
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redacted_exc_info,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    redact_exception_texts()
    drop_query_strings()


# Loggers that print tracebacks of unexpected errors: uvicorn's ("Exception in ASGI
# application") and asyncio's ("Task exception was never retrieved").
TRACEBACK_LOGGERS = ("uvicorn.error", "asyncio")


class ExceptionTextFilter(logging.Filter):
    """Keeps the traceback of a logged exception but drops the exception's text.

    An error's message may carry what it failed on (a pydantic validation error quotes the
    input: a patient's name, a clinical question); the frames and the type are what an
    operator needs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redacted_traceback(record.exc_info[1])
            record.exc_info = None
        return True


def redacted_traceback(exc: BaseException) -> str:
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_tb(current.__traceback__))
        parts.append(f"Traceback (most recent call last):\n{frames}{type(current).__qualname__}")
        current = current.__cause__ or current.__context__
    return "\n\nwhile handling:\n".join(reversed(parts))


def redacted_exc_info(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """structlog's ``format_exc_info`` without the exception's text (``ExceptionTextFilter``):
    ``log.error(..., exc_info=exc)`` writes the frames and the types as ``exception``."""
    exc_info = event.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    if isinstance(exc, BaseException):
        event["exception"] = redacted_traceback(exc)
    return event


def redact_exception_texts() -> None:
    for name in TRACEBACK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ExceptionTextFilter) for f in logger.filters):
            logger.addFilter(ExceptionTextFilter())


# uvicorn's own request lines: the websocket handshake ("WebSocket /ws?as=patient&appointment=7"
# [accepted]), logged even with --no-access-log, and the access log when it is switched on.
REQUEST_LINE_LOGGERS = ("uvicorn.error", "uvicorn.access")


class QueryStringFilter(logging.Filter):
    """Cuts the query string off every path in a log line's arguments: a query names an
    appointment or carries a token, the path alone says what was asked for."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_has_query(a) for a in record.args):
            record.args = tuple(a.split("?", 1)[0] if _has_query(a) else a for a in record.args)
        return True


def _has_query(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith("/") and "?" in value


def drop_query_strings() -> None:
    for name in REQUEST_LINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryStringFilter) for f in logger.filters):
            logger.addFilter(QueryStringFilter())


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
