"""OpenTelemetry traces: one provider per process, the exporter chosen by the standard
`OTEL_*` variables, and a W3C `traceparent` carrier that crosses Ray handle calls.

Exporter: `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `none`). Unset, it is `otlp` when an
OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and `none` otherwise. OTLP speaks http/protobuf.
Sampling (`OTEL_TRACES_SAMPLER`), batching (`OTEL_BSP_*`) and resource attributes
(`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) are read by the SDK itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from serve.telemetry.logs import REQUEST_ID, SESSION_ID

TRACER_NAME = "theo"
REQUEST_ID_KEY = "x-request-id"
SESSION_ID_KEY = "x-theo-session-id"
OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

Carrier = dict[str, str]
"""What crosses a Ray handle call: `traceparent` (+ `tracestate`) and Theo's request ids."""

_lock = threading.Lock()
_configured = False


def exporter_name() -> str:
    name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if name:
        return name.split(",")[0].strip()
    return "otlp" if any(os.environ.get(v) for v in OTLP_ENDPOINT_VARS) else "none"


def _span_exporter(name: str) -> Any | None:
    if name == "none":
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        )
        if protocol != "http/protobuf":
            raise ValueError(f"OTLP protocol {protocol!r} is not supported; use http/protobuf")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER={name!r} is not supported (otlp, console, none)")


def configure_tracing(service_name: str, attributes: Mapping[str, str] | None = None) -> None:
    """Install this process's tracer provider once. Spans always get ids (logs carry them);
    they leave the process only when an exporter is configured."""
    global _configured
    with _lock:
        if _configured or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = _span_exporter(exporter_name())
        existing = trace.get_tracer_provider()
        if isinstance(existing, TracerProvider):
            # Someone (e.g. Ray Serve's own tracing) installed one: add to it, never replace.
            if exporter is not None:
                existing.add_span_processor(BatchSpanProcessor(exporter))
            _configured = True
            return
        resource_attributes: dict[str, str] = dict(attributes or {})
        if not os.environ.get("OTEL_SERVICE_NAME"):
            resource_attributes["service.name"] = service_name
        provider = TracerProvider(resource=Resource.create(resource_attributes))
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _configured = True


def tracer() -> Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_carrier() -> Carrier:
    """The current trace context and request/session ids, for the engine call's arguments."""
    carrier: Carrier = {}
    propagate.inject(carrier)
    request_id, session_id = REQUEST_ID.get(), SESSION_ID.get()
    if request_id:
        carrier[REQUEST_ID_KEY] = request_id
    if session_id:
        carrier[SESSION_ID_KEY] = session_id
    return carrier


class ServerSpan:
    """The engine side of a call: a server span continuing the caller's trace (from its
    carrier). `active()` makes it current, with the caller's request/session ids for logs;
    use it around code without `yield` (async generators end and resume elsewhere)."""

    def __init__(self, carrier: Mapping[str, str] | None, name: str, **attributes: Any) -> None:
        carrier = dict(carrier or {})
        parent = propagate.extract(carrier)
        self.request_id = carrier.get(REQUEST_ID_KEY)
        self.session_id = carrier.get(SESSION_ID_KEY)
        self.span = tracer().start_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        self.context = trace.set_span_in_context(self.span, parent)

    @contextmanager
    def active(self) -> Iterator[Span]:
        request_token = REQUEST_ID.set(self.request_id)
        session_token = SESSION_ID.set(self.session_id)
        context_token = otel_context.attach(self.context)
        try:
            yield self.span
        finally:
            otel_context.detach(context_token)
            SESSION_ID.reset(session_token)
            REQUEST_ID.reset(request_token)

    def end(self, error: BaseException | None = None) -> None:
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self.span.end()


@contextmanager
def continued(carrier: Mapping[str, str] | None, name: str, **attributes: Any) -> Iterator[Span]:
    """A `ServerSpan` for a block: current inside it, ended (with any error) after it."""
    call = ServerSpan(carrier, name, **attributes)
    error: BaseException | None = None
    try:
        with call.active() as current:
            yield current
    except BaseException as exc:
        error = exc
        raise
    finally:
        call.end(error)


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A child of the current span, current inside the block."""
    with tracer().start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


def current_context() -> Context:
    return otel_context.get_current()


def timed_span(name: str, parent: Context, start_ns: int, end_ns: int, **attributes: Any) -> Span:
    """A span recorded after the fact (queue wait, a batch shared by several requests)."""
    recorded = tracer().start_span(name, context=parent, start_time=start_ns, attributes=attributes)
    recorded.end(end_time=end_ns)
    return recorded


def trace_ids() -> tuple[str | None, str | None]:
    """(trace id, span id) of the current span as hex, or (None, None) outside any span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def trace_method(obj: object, method: str, span_name: str, **attributes: Any) -> None:
    """Wrap one instance's method in a span, so an engine stays free of tracing code (e.g. the
    Whisper backend's VAD window planning, called from inside `prepare`)."""
    original = getattr(obj, method)

    def traced(*args: Any, **kwargs: Any) -> Any:
        with span(span_name, attributes):
            return original(*args, **kwargs)

    setattr(obj, method, traced)


def flush(timeout_ms: int = 5000) -> bool:
    """Export what is buffered (tests, shutdown)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    return bool(force_flush(timeout_ms)) if force_flush is not None else True
