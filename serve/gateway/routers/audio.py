"""`POST /v1/audio/transcriptions` and `POST /v1/audio/translations`."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect

from serve.audio import decode_audio_bytes
from serve.errors import TheoError
from serve.gateway.auth import require_api_key
from serve.gateway.context import GatewayContext, get_context
from serve.gateway.forms import parse_request, upload_file
from serve.gateway.serving import (
    render,
    run_transcription,
    sse_transcription,
    streaming_response,
    transcribe_options,
)
from serve.gateway.upload import check_upload_size, read_form
from serve.telemetry.tracing import span

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/audio", dependencies=[Depends(require_api_key)])


UNKNOWN_MODEL = "unknown"
"""The model label of requests that name no served model: labels never come from user input."""


def record_request(
    context: GatewayContext, model: str, route: str, status: int, started: float
) -> None:
    """Count the request; a failure here is logged and never replaces the answer."""
    try:
        context.metrics.requests.labels(model, route, str(status)).inc()
        context.metrics.request_latency.labels(model, route, str(status)).observe(
            time.perf_counter() - started
        )
        if status == 429:
            context.metrics.rate_limited.labels(model, route).inc()
    except Exception:
        logger.exception("recording the request's metrics failed")


async def _handle(request: Request, context: GatewayContext, *, translation: bool) -> Response:
    route = "translations" if translation else "transcriptions"
    started = time.perf_counter()
    model = UNKNOWN_MODEL
    status = 500
    form: FormData | None = None
    try:
        limit = context.settings.max_upload_bytes
        form = await read_form(request, limit)
        body = parse_request(form, translation=translation)
        routed = context.router.resolve(body.model)
        model = routed.name
        options = transcribe_options(body, routed.manifest, translation=translation)
        upload = upload_file(form)
        check_upload_size(upload, limit)
        data = await upload.read()
        with span("decode", {"theo.upload_bytes": len(data)}):
            audio = await asyncio.to_thread(
                decode_audio_bytes, data, max_duration_s=context.settings.max_audio_duration_s
            )
        del data
        if body.stream:
            status = 200
            return streaming_response(sse_transcription(context, routed, audio, options))
        context.metrics.in_flight.labels(model).inc()
        try:
            result = await run_transcription(context, routed, audio, options)
        finally:
            context.metrics.in_flight.labels(model).dec()
        with span("postprocess", {"theo.response_format": body.response_format}):
            response = render(result, body)
        status = response.status_code
        return response
    except TheoError as exc:
        status = exc.status_code
        raise
    except ClientDisconnect:
        status = 499
        raise
    finally:
        if form is not None:
            await form.close()
        record_request(context, model, route, status, started)


@router.post("/transcriptions")
async def transcriptions(
    request: Request, context: GatewayContext = Depends(get_context)
) -> Response:
    return await _handle(request, context, translation=False)


@router.post("/translations")
async def translations(
    request: Request, context: GatewayContext = Depends(get_context)
) -> Response:
    return await _handle(request, context, translation=True)
