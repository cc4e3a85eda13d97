"""Tracebacks of unexpected errors keep their frames but lose the exception's text."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from app.logging import ExceptionTextFilter, configure_logging, get_logger
from app.main import create_app
from app.settings import Settings

SECRET = "Erika Mustermann, Belastungsdyspnoe"


def failing_record() -> logging.LogRecord:
    seen: dict[str, str] = {}
    try:
        try:
            seen["patient"]
        except KeyError as inner:
            raise ValueError(f"invalid input: {SECRET}") from inner
    except ValueError as exc:
        return logging.LogRecord(
            "uvicorn.error",
            logging.ERROR,
            __file__,
            1,
            "Exception in ASGI application",
            None,
            (type(exc), exc, exc.__traceback__),
        )
    raise AssertionError("unreachable")


def test_logging_filter_keeps_frames_and_types_but_not_the_text() -> None:
    record = failing_record()
    assert ExceptionTextFilter().filter(record) is True
    text = logging.Formatter().format(record)
    assert "Exception in ASGI application" in text
    assert "ValueError" in text
    assert "KeyError" in text
    assert "failing_record" in text  # the frame
    assert SECRET not in text
    assert "ValueError:" not in text
    assert "KeyError:" not in text


def test_logging_filter_is_installed_on_the_servers_traceback_loggers(
    make_settings: Callable[..., Settings],
) -> None:
    create_app(make_settings())
    for name in ("uvicorn.error", "asyncio"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, ExceptionTextFilter) for f in filters) == 1


def test_structured_log_lines_keep_frames_and_types_but_not_the_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Konsil's own ``log.error(..., exc_info=exc)`` (a connection's fault, a failed request).
    record = failing_record()
    assert record.exc_info is not None
    configure_logging(json=True, level="INFO")
    try:
        get_logger("konsil.test").error("signaling.connection_failed", exc_info=record.exc_info[1])
    finally:
        configure_logging(json=False, level="WARNING")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "signaling.connection_failed"
    assert "ValueError" in line["exception"]
    assert "KeyError" in line["exception"]
    assert SECRET not in json.dumps(line)
