"""In one process: the carrier an engine call takes continues the caller's trace with its
request id, and JSON log records carry request, session and trace ids."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from serve.telemetry import tracing
from serve.telemetry.logs import REQUEST_ID, SESSION_ID, JsonFormatter
from serve.telemetry.tracing import continued, current_carrier


def test_carrier_continues_the_trace_with_the_request_id(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    token = REQUEST_ID.set("req-42")
    try:
        with tracer.start_as_current_span("gateway") as gateway:
            carrier = current_carrier()
    finally:
        REQUEST_ID.reset(token)
    assert carrier["traceparent"].split("-")[1] == format(
        gateway.get_span_context().trace_id, "032x"
    )
    assert carrier["x-request-id"] == "req-42"
    assert REQUEST_ID.get() is None

    seen: dict[str, str | None] = {}
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("theo"))
    with continued(carrier, "engine.transcribe", **{"theo.model": "m"}):
        seen["request_id"] = REQUEST_ID.get()
    assert seen["request_id"] == "req-42"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    engine = spans["engine.transcribe"]
    assert engine.parent is not None
    assert engine.parent.span_id == spans["gateway"].context.span_id
    assert engine.context.trace_id == spans["gateway"].context.trace_id
    assert engine.kind is trace.SpanKind.SERVER


def test_json_records_carry_ids() -> None:
    provider = TracerProvider()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("gateway"))
    logger = logging.getLogger("serve.test_json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    request, session = REQUEST_ID.set("req-7"), SESSION_ID.set("sess-9")
    try:
        with provider.get_tracer("t").start_as_current_span("work") as current:
            logger.info("decoded %d windows", 3, extra={"model": "whisper-tiny.en"})
        logger.warning("outside")
    finally:
        SESSION_ID.reset(session)
        REQUEST_ID.reset(request)
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "decoded 3 windows" and inside["level"] == "INFO"
    assert inside["request_id"] == "req-7" and inside["session_id"] == "sess-9"
    assert inside["trace_id"] == format(current.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(current.get_span_context().span_id, "016x")
    assert inside["model"] == "whisper-tiny.en" and inside["role"] == "gateway"
    assert "trace_id" not in outside and outside["request_id"] == "req-7"
