"""The gateway: FastAPI app + the Serve ingress deployment that owns the engine handles."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve

from engines.manifest import parse_manifest_arg
from serve.gateway.context import GatewayContext, get_context, set_context
from serve.gateway.errors import install_error_handlers
from serve.gateway.openapi import theo_openapi
from serve.gateway.routers import audio, models, ops, realtime, ui
from serve.routing import ModelRouter
from serve.settings import TheoSettings
from serve.telemetry.http import RequestIdMiddleware, TracingMiddleware
from serve.telemetry.logs import configure_logging
from serve.telemetry.metrics import GatewayMetrics
from serve.telemetry.tracing import configure_tracing

api = FastAPI(title="Theo", description="OpenAI-compatible speech-to-text", version="0.1.0")
install_error_handlers(api)
api.include_router(audio.router)
api.include_router(models.router)
api.include_router(ops.router)
api.include_router(realtime.router)
api.include_router(ui.router)
api.add_middleware(RequestIdMiddleware)
api.add_middleware(TracingMiddleware)  # outermost: the request id is set inside its span


def openapi() -> dict[str, Any]:
    """`/openapi.json`: the audio forms (with this deployment's models) and the errors."""
    try:
        models = [m.name for m in get_context().router.models()]
    except RuntimeError:  # not inside a replica
        models = []
    return theo_openapi(api, models)


api.openapi = openapi  # type: ignore[method-assign]


@serve.deployment(max_ongoing_requests=1024)
@serve.ingress(api)
class Gateway:
    def __init__(
        self, settings: dict[str, Any], manifests: list[dict[str, Any]], engines: dict[str, Any]
    ) -> None:
        configure_logging("gateway")
        configure_tracing("theo-gateway")
        set_context(
            GatewayContext(
                settings=TheoSettings(**settings),
                router=ModelRouter([parse_manifest_arg(m) for m in manifests], engines),
                metrics=GatewayMetrics(),
            )
        )
