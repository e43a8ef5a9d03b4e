"""Structured logs: `THEO_LOG_FORMAT=json` writes one JSON object per record to stderr with the
request id, realtime session id and the current trace/span ids; `text` (the default) leaves
logging as it is. `THEO_LOG_LEVEL` sets the level of Theo's loggers (default INFO)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextvars import ContextVar
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("theo_request_id", default=None)
SESSION_ID: ContextVar[str | None] = ContextVar("theo_session_id", default=None)
THEO_LOGGERS = ("serve", "engines")
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, process_role: str | None = None) -> None:
        super().__init__()
        self.process_role = process_role

    def format(self, record: logging.LogRecord) -> str:
        from opentelemetry import trace

        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.process_role:
            entry["role"] = self.process_role
        request_id, session_id = REQUEST_ID.get(), SESSION_ID.get()
        if request_id:
            entry["request_id"] = request_id
        if session_id:
            entry["session_id"] = session_id
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = format(ctx.trace_id, "032x")
            entry["span_id"] = format(ctx.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def log_format() -> str:
    return os.environ.get("THEO_LOG_FORMAT", "text").strip().lower()


def configure_logging(process_role: str | None = None) -> None:
    """Apply `THEO_LOG_FORMAT` / `THEO_LOG_LEVEL` to Theo's loggers in this process (idempotent)."""
    level = os.environ.get("THEO_LOG_LEVEL", "INFO").strip().upper()
    fmt = log_format()
    if fmt not in ("text", "json"):
        raise ValueError(f"THEO_LOG_FORMAT must be 'text' or 'json', not {fmt!r}")
    for name in THEO_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        for handler in list(logger.handlers):
            if getattr(handler, "_theo_json", False):
                logger.removeHandler(handler)
        if fmt == "json":
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(JsonFormatter(process_role))
            handler._theo_json = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
            logger.propagate = False
        else:
            logger.propagate = True
