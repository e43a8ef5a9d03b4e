"""Transcription requests: options by capability, the engine call, errors, the response."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from opentelemetry.trace import SpanKind

from engines.base import SegmentResult, TranscribeOptions, TranscriptionResult
from engines.manifest import ModelManifest
from serve.errors import (
    EngineOverloadedError,
    EngineTimeoutError,
    EngineUnavailableError,
    InvalidParameterError,
    TheoError,
    UnsupportedCapabilityError,
)
from serve.gateway.context import GatewayContext
from serve.gateway.formatting import (
    render_json,
    render_srt,
    render_text,
    render_verbose_json,
    render_vtt,
    usage,
)
from serve.gateway.protocol import TranscriptionRequest
from serve.languages import LanguageError, validate_language
from serve.routing import RoutedModel
from serve.telemetry.tracing import current_carrier, span

TEMPERATURE_STEP = 0.2


def temperature_ladder(temperature: float) -> tuple[float, ...]:
    """0 means Whisper's fallback ladder 0, 0.2 ... 1.0; t > 0 starts the ladder at t."""
    steps = round((1.0 - temperature) / TEMPERATURE_STEP)
    return tuple(round(temperature + i * TEMPERATURE_STEP, 2) for i in range(steps + 1)) or (
        temperature,
    )


def transcribe_options(
    request: TranscriptionRequest, manifest: ModelManifest, *, translation: bool
) -> TranscribeOptions:
    """The engine options for a request, checked against the model's capabilities."""
    caps = manifest.capabilities
    if translation and not caps.translation:
        raise UnsupportedCapabilityError(
            f"The model '{manifest.name}' does not support translation.", param="model"
        )
    try:
        validate_language(request.language, caps.languages, manifest.name)
    except LanguageError as exc:
        raise InvalidParameterError("language", str(exc)) from None
    words = "word" in request.timestamp_granularities and request.response_format == "verbose_json"
    if words and not caps.word_timestamps:
        raise UnsupportedCapabilityError(
            f"The model '{manifest.name}' does not provide word timestamps.",
            param="timestamp_granularities",
        )
    hot_words = tuple(request.hot_words)
    prompt = request.prompt
    if hot_words and not caps.hot_words:
        # No native biasing: hot words become part of the initial prompt.
        prompt = ", ".join(hot_words) + (f". {prompt}" if prompt else "")
        hot_words = ()
    return TranscribeOptions(
        language=request.language if not translation else None,
        task="translate" if translation else "transcribe",
        prompt=prompt if caps.initial_prompt or not prompt else None,
        hot_words=hot_words,
        temperatures=temperature_ladder(request.temperature),
        word_timestamps=words,
        vad_filter=request.vad_filter,
        condition_on_previous_text=request.condition_on_previous_text,
    )


def render(result: TranscriptionResult, request: TranscriptionRequest) -> Response:
    fmt = request.response_format
    if fmt == "json":
        return JSONResponse(render_json(result))
    if fmt == "verbose_json":
        return JSONResponse(render_verbose_json(result, request.timestamp_granularities))
    if fmt == "srt":
        return PlainTextResponse(render_srt(result), media_type="application/x-subrip")
    if fmt == "vtt":
        return PlainTextResponse(render_vtt(result), media_type="text/vtt")
    return PlainTextResponse(render_text(result))


def engine_error(model: str, exc: BaseException) -> TheoError:
    """Map a failure of the engine call to the client-facing error."""
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    if isinstance(exc, TheoError):
        return exc
    if isinstance(exc, BackPressureError):
        return EngineOverloadedError(model)
    if isinstance(exc, DeploymentUnavailableError):
        return EngineUnavailableError(model, "the engine deployment is unavailable")
    if isinstance(exc, TimeoutError):
        return EngineTimeoutError(f"The model '{model}' did not answer in time.")
    return EngineUnavailableError(model, "the engine failed to process the request")


async def run_transcription(
    context: GatewayContext, routed: RoutedModel, audio: Any, options: TranscribeOptions
) -> TranscriptionResult:
    try:
        with span("engine.call", {"theo.model": routed.name}, kind=SpanKind.CLIENT):
            result: TranscriptionResult = await asyncio.wait_for(
                routed.handle.transcribe.remote(audio, options, current_carrier()),
                timeout=context.settings.request_timeout_s,
            )
    except Exception as exc:
        raise engine_error(routed.name, exc) from exc
    context.metrics.audio_seconds.labels(routed.name, routed.manifest.engine).inc(result.duration)
    return result


def sse_event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


async def sse_transcription(
    context: GatewayContext, routed: RoutedModel, audio: Any, options: TranscribeOptions
) -> AsyncIterator[bytes]:
    """OpenAI streaming events: `transcript.text.delta` per segment, then `.done` with usage."""
    started = time.perf_counter()
    stream = routed.handle.options(stream=True).transcribe_stream.remote(
        audio, options, current_carrier()
    )
    first = True
    status = "200"
    try:
        async for item in stream:
            if isinstance(item, SegmentResult):
                delta = item.text.lstrip() if first else item.text
                first = False
                yield sse_event({"type": "transcript.text.delta", "delta": delta, "logprobs": None})
            elif isinstance(item, TranscriptionResult):
                context.metrics.audio_seconds.labels(routed.name, routed.manifest.engine).inc(
                    item.duration
                )
                yield sse_event(
                    {
                        "type": "transcript.text.done",
                        "text": item.text,
                        "logprobs": None,
                        "usage": usage(item).model_dump(),
                    }
                )
    except Exception as exc:
        error = engine_error(routed.name, exc)
        status = str(error.status_code)
        yield sse_event({"type": "error", **error.body()})
    finally:
        context.metrics.request_latency.labels(routed.name, "stream", status).observe(
            time.perf_counter() - started
        )


def streaming_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
