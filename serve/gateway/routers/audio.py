"""`POST /v1/audio/transcriptions` and `POST /v1/audio/translations`."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.formparsers import MultiPartException

from serve.audio import decode_audio_bytes
from serve.errors import FileTooLargeError, InvalidRequestError, TheoError
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
from serve.telemetry.tracing import span

router = APIRouter(prefix="/v1/audio", dependencies=[Depends(require_api_key)])


async def _handle(request: Request, context: GatewayContext, *, translation: bool) -> Response:
    route = "translations" if translation else "transcriptions"
    started = time.perf_counter()
    model = "unknown"
    status = 500
    try:
        limit = context.settings.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise FileTooLargeError(limit)
        try:
            form = await request.form(max_files=1, max_fields=64, max_part_size=limit + 1)
        except MultiPartException as exc:
            if "exceeded" in str(exc).lower() or "too large" in str(exc).lower():
                raise FileTooLargeError(limit) from None
            raise InvalidRequestError(f"Could not parse the multipart form: {exc}") from None
        body = parse_request(form, translation=translation)
        model = body.model
        routed = context.router.resolve(body.model)
        options = transcribe_options(body, routed.manifest, translation=translation)
        upload = upload_file(form)
        data = await upload.read()
        if len(data) > limit:
            raise FileTooLargeError(limit)
        with span("decode", {"theo.upload_bytes": len(data)}):
            audio = await asyncio.to_thread(decode_audio_bytes, data)
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
    finally:
        context.metrics.requests.labels(model, route, str(status)).inc()
        context.metrics.request_latency.labels(model, route, str(status)).observe(
            time.perf_counter() - started
        )
        if status == 429:
            context.metrics.rate_limited.labels(model, route).inc()


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
