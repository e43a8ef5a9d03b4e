"""ASGI middleware of the gateway: the OpenTelemetry server span of each HTTP request or
WebSocket session (named by its FastAPI route), and the request id for logs and engine calls.

Serve's ingress pickles the FastAPI app when `Gateway` is defined, and the replica serves that
copy; `FastAPIInstrumentor.instrument_app` keeps unpicklable state (meters, locks) on the app,
so the gateway adds these classes with `api.add_middleware` instead. They are built in the
replica, after `configure_tracing`, from OpenTelemetry's ASGI instrumentation (the one the
FastAPI instrumentation wraps).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.telemetry.logs import REQUEST_ID

EXCLUDED_URLS = "/health,/metrics"
REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def method_of(scope: Scope) -> str:
    return "WEBSOCKET" if scope["type"] == "websocket" else str(scope.get("method", "HTTP"))


def initial_span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The server span starts before routing; `RequestIdMiddleware` names it by route."""
    return method_of(scope), {}


def route_template(scope: Scope) -> str | None:
    """The FastAPI route template matched for this scope (`/v1/models/{model_id}`), never the
    raw path, which may hold ids."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.metrics import NoOpMeterProvider

        self.app = OpenTelemetryMiddleware(
            app,
            excluded_urls=EXCLUDED_URLS,
            default_span_details=initial_span_details,
            exclude_spans=["receive", "send"],
            meter_provider=NoOpMeterProvider(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def request_id_of(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            return candidate if _REQUEST_ID_RE.match(candidate) else None
    return None


class RequestIdMiddleware:
    """The request id Serve's proxy assigned (`x-request-id`, also in the response) becomes
    the current request id: JSON logs show it, engine calls carry it, the span records it.
    Once routed, the server span is named `POST /v1/audio/transcriptions` (method + route)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        from opentelemetry import trace

        request_id = request_id_of(scope)
        server_span = trace.get_current_span()
        if request_id:
            server_span.set_attribute("theo.request_id", request_id)

        async def naming_send(message: Message) -> None:
            # The server span ends with the response, so it is named when the response starts.
            if message["type"] in ("http.response.start", "websocket.accept"):
                template = route_template(scope)
                if template is not None:
                    server_span.update_name(f"{method_of(scope)} {template}")
                    server_span.set_attribute("http.route", template)
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, naming_send)
        finally:
            REQUEST_ID.reset(token)
