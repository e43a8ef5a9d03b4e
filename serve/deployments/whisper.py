"""The Whisper engine deployment: windows of concurrent requests and realtime sessions are
queued together and decoded as one batch (Ray Serve `@serve.batch`, tunable live through
`user_config`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry.context import Context
from ray import serve

from engines.base import (
    SAMPLE_RATE,
    Audio,
    SegmentResult,
    TranscribeOptions,
    TranscriptionResult,
)
from engines.whisper.backend import WhisperBackend, WindowJob, WindowOutput
from engines.whisper.context import decode_windows
from serve.deployments.engine import BaseEngineDeployment
from serve.telemetry.batching import BatchTimer, QueuedWindow
from serve.telemetry.tracing import (
    Carrier,
    ServerSpan,
    continued,
    current_context,
    span,
    trace_method,
)


@serve.deployment(max_ongoing_requests=128)
class WhisperDeployment(BaseEngineDeployment):
    backend: WhisperBackend

    def instrument(self) -> None:
        trace_method(self.backend, "plan_windows", "vad")

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        if "max_batch_size" in user_config:
            self._decode.set_max_batch_size(int(user_config["max_batch_size"]))  # type: ignore[attr-defined]
        if "batch_wait_timeout_s" in user_config:
            self._decode.set_batch_wait_timeout_s(  # type: ignore[attr-defined]
                float(user_config["batch_wait_timeout_s"])
            )

    async def transcribe(
        self, audio: Audio, options: TranscribeOptions, trace: Carrier | None = None
    ) -> TranscriptionResult:
        """`trace`: the caller's W3C trace context and request ids (`current_carrier()`)."""
        with continued(trace, "engine.transcribe", **self.attributes(audio)):
            started = time.perf_counter()
            with span("prepare"):
                jobs = await asyncio.to_thread(self.backend.prepare, audio, options)
            outputs = [o async for o in self._windows(jobs, options, current_context())]
            with span("postprocess"):
                result = self.backend.assemble(len(audio) / SAMPLE_RATE, options, outputs)
            self.observe_rtf(started, result.duration)
            return result

    async def transcribe_stream(
        self, audio: Audio, options: TranscribeOptions, trace: Carrier | None = None
    ) -> AsyncIterator[SegmentResult | TranscriptionResult]:
        """Segments in time order as their windows finish, then the whole result."""
        call = ServerSpan(trace, "engine.transcribe_stream", **self.attributes(audio))
        error: BaseException | None = None
        try:
            started = time.perf_counter()
            with call.active(), span("prepare"):
                jobs = await asyncio.to_thread(self.backend.prepare, audio, options)
            outputs: list[WindowOutput] = []
            next_id = 0
            async for output in self._windows(jobs, options, call.context):
                outputs.append(output)
                for segment in output.segments:
                    segment.id = next_id
                    next_id += 1
                    yield segment
            with call.active(), span("postprocess"):
                result = self.backend.assemble(len(audio) / SAMPLE_RATE, options, outputs)
            self.observe_rtf(started, result.duration)
            yield result
        except BaseException as exc:
            error = exc
            raise
        finally:
            call.end(error)

    def _windows(
        self, jobs: list[WindowJob], options: TranscribeOptions, context: Context
    ) -> AsyncIterator[WindowOutput]:
        """The request's windows through the shared batcher, in order; with context, each
        waits for the one before it (`engines.whisper.context.decode_windows`)."""
        return decode_windows(
            jobs,
            lambda job: self._queued_decode(job, context),
            self.backend.prompt_history(options),
            condition_on_previous_text=options.condition_on_previous_text,
        )

    async def _queued_decode(self, job: WindowJob, context: Context) -> WindowOutput:
        self.metrics.queue_depth.inc()
        try:
            output: WindowOutput = await self._decode(QueuedWindow(job, context))
        finally:
            self.metrics.queue_depth.dec()
        return output

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def _decode(self, items: list[QueuedWindow[WindowJob]]) -> list[WindowOutput]:
        batch = BatchTimer(items, self.metrics.batch_wait)
        with batch.inference():
            outputs = await asyncio.to_thread(
                self.backend.decode_batch, [item.job for item in items]
            )
        self.metrics.batch_size.observe(len(items))
        self.metrics.batch_latency.observe(batch.finish())
        return outputs
