"""`GET /health` (200 when every model is loaded, else 503 with reasons) and `GET /metrics`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from serve.gateway.context import GatewayContext, get_context
from serve.routing import RoutedModel
from serve.telemetry.metrics import merge_expositions

logger = logging.getLogger(__name__)
router = APIRouter()
PROBE_TIMEOUT_S = 2.0


async def _model_state(routed: RoutedModel) -> dict[str, str]:
    try:
        state: dict[str, str] = await asyncio.wait_for(
            routed.handle.health.remote(), timeout=PROBE_TIMEOUT_S
        )
    except TimeoutError:
        return {"state": "loading", "detail": "engine replica not ready yet"}
    except Exception as exc:
        # The cause (a Ray traceback, perhaps) goes to the log, not to an unauthenticated caller.
        logger.warning("health probe of %s failed: %r", routed.name, exc)
        return {"state": "failed", "detail": f"the engine did not answer ({type(exc).__name__})"}
    return state


@router.get("/health")
async def health(context: GatewayContext = Depends(get_context)) -> JSONResponse:
    models = context.router.models()
    states = await asyncio.gather(*(_model_state(m) for m in models))
    report: dict[str, Any] = {m.name: s for m, s in zip(models, states, strict=True)}
    ready = bool(models) and all(s["state"] == "ready" for s in states)
    body = {"status": "ok" if ready else "unavailable", "models": report}
    if not models:
        body["detail"] = "no models are configured"
    return JSONResponse(body, status_code=200 if ready else 503)


async def _engine_exposition(routed: RoutedModel) -> str:
    try:
        text: str = await asyncio.wait_for(
            routed.handle.metrics_text.remote(), timeout=PROBE_TIMEOUT_S
        )
    except Exception:
        return ""
    return text


@router.get("/metrics")
async def metrics(context: GatewayContext = Depends(get_context)) -> Response:
    engines = await asyncio.gather(*(_engine_exposition(m) for m in context.router.models()))
    body = merge_expositions([context.metrics.exposition(), *engines])
    return Response(body, media_type=CONTENT_TYPE_LATEST)
