"""What every gateway request handler needs, held on `app.state.context` of the replica."""

from __future__ import annotations

from dataclasses import dataclass

from serve.routing import ModelRouter
from serve.settings import TheoSettings
from serve.telemetry.metrics import GatewayMetrics


@dataclass
class GatewayContext:
    settings: TheoSettings
    router: ModelRouter
    metrics: GatewayMetrics


_current: GatewayContext | None = None
"""One per gateway replica process. Serve serves a copy of the FastAPI app, so the context
lives here rather than on `app.state`."""


def set_context(context: GatewayContext) -> None:
    global _current
    _current = context


def get_context() -> GatewayContext:
    if _current is None:
        raise RuntimeError("gateway context is not initialised")
    return _current
