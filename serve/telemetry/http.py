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

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from serve.telemetry.logs import REQUEST_ID

EXCLUDED_URLS = "/health,/metrics"
REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def route_span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """`POST /v1/audio/transcriptions`, `WEBSOCKET /v1/realtime`: the route template, never
    the raw path (which may hold ids)."""
    route_path = None
    for route in getattr(scope.get("app"), "routes", []):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            route_path = getattr(route, "path", None)
            break
    method = "WEBSOCKET" if scope["type"] == "websocket" else str(scope.get("method", "HTTP"))
    if route_path is None:
        return method, {}
    return f"{method} {route_path}", {"http.route": route_path}


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.metrics import NoOpMeterProvider

        self.app = OpenTelemetryMiddleware(
            app,
            excluded_urls=EXCLUDED_URLS,
            default_span_details=route_span_details,
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
    the current request id: JSON logs show it, engine calls carry it, the span records it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        from opentelemetry import trace

        request_id = request_id_of(scope)
        if request_id:
            trace.get_current_span().set_attribute("theo.request_id", request_id)
        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_ID.reset(token)
