"""How a session reaches a model: any `transcribe(audio, options)` coroutine, with retries.

In the gateway it is the engine deployment's handle (so passes of many sessions share the
deployment's dynamic batcher); in-process it is a loaded backend's `transcribe_file`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from opentelemetry.trace import SpanKind

from engines.base import Audio, STTBackend, TranscribeOptions, TranscriptionResult
from serve.realtime.telemetry import record_recovery
from serve.telemetry.tracing import current_carrier, span

logger = logging.getLogger(__name__)
T = TypeVar("T")

Transcriber = Callable[[Audio, TranscribeOptions], Awaitable[TranscriptionResult]]


ENGINE_FAILURE_MESSAGE = "the engine did not transcribe the audio within the retry window"


class EngineFailureError(RuntimeError):
    """The engine could not transcribe within the retry window; its text is client-safe."""


def handle_transcriber(handle: Any) -> Transcriber:
    """Calls `transcribe` on a Ray Serve deployment handle."""

    async def transcribe(audio: Audio, options: TranscribeOptions) -> TranscriptionResult:
        with span("engine.call", kind=SpanKind.CLIENT):
            result: TranscriptionResult = await handle.transcribe.remote(
                audio, options, current_carrier()
            )
        return result

    return transcribe


def backend_transcriber(backend: STTBackend) -> Transcriber:
    return backend.transcribe_file


async def transcribe_once(
    transcribe: Transcriber, audio: Audio, options: TranscribeOptions, timeout_s: float
) -> TranscriptionResult:
    return await asyncio.wait_for(transcribe(audio, options), timeout_s)


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    retry_window_s: float,
    first_backoff_s: float = 0.2,
    max_backoff_s: float = 2.0,
) -> T:
    """Run `call`; on failure (replica died, timeout) run it again with backoff until
    `retry_window_s` has passed since the first failure, then raise `EngineFailureError`.

    Through a deployment handle, a retried call reaches a live replica (or waits for the
    replacement of a dead one).
    """
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    backoff = first_backoff_s
    attempt = 0
    while True:
        attempt += 1
        try:
            result = await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            now = loop.time()
            deadline = now + retry_window_s if deadline is None else deadline
            logger.warning("engine call failed (attempt %d): %r", attempt, exc)
            if now + backoff > deadline:
                # The cause stays in the log: a client never sees internal exception text.
                raise EngineFailureError(ENGINE_FAILURE_MESSAGE) from exc
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
            continue
        if attempt > 1:
            record_recovery()
        return result
