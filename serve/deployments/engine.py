"""The engine deployment: one Serve deployment per served model, for any registered engine.

`BaseEngineDeployment` owns what every engine needs: settings, logging, tracing (and the trace
carrier of each call), metrics, timed model load, health, the file contract (`transcribe`,
`transcribe_stream`) over `STTBackend.transcribe_file`, and, for `NativeStreamingBackend`s,
the streaming contract (`stream_open` / `stream_accept` / `stream_close`) with an idle-session
reaper. `EngineDeployment` serves any engine with it as it is; an engine with serving needs
of its own subclasses it and names the subclass in its spec (Whisper batches windows across
requests: `serve.deployments.whisper`).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from ray import serve

from engines.base import (
    SAMPLE_RATE,
    Audio,
    HealthState,
    NativeStreamingBackend,
    SegmentResult,
    StreamSegment,
    StreamStep,
    STTBackend,
    TranscribeOptions,
    TranscriptionResult,
)
from engines.manifest import ModelManifest, parse_manifest_arg
from engines.pull import ensure_model
from engines.settings import EngineSettings
from engines.spec import EngineSpec, engine_spec
from serve.settings import TheoSettings
from serve.telemetry.logs import configure_logging
from serve.telemetry.metrics import EngineMetrics
from serve.telemetry.tracing import Carrier, configure_tracing, continued, span

IDLE_STREAM_TIMEOUT_S = 300.0


def allotted_cpus() -> float | None:
    """The CPUs Ray allotted this replica (its deployment's `num_cpus`), None outside Ray."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        resources: dict[str, float] = ray.get_runtime_context().get_assigned_resources()  # type: ignore[no-untyped-call]
        return float(resources.get("CPU", 0.0))
    except Exception:  # not in a Ray worker
        return None


def engine_threads(configured: int, allotted: float | None) -> int:
    """Threads for an engine's kernels: `cpu_threads` when set; otherwise (0) the CPUs the
    replica is allotted, rounded up. Ray sets an actor's `OMP_NUM_THREADS` to its `num_cpus`
    and CTranslate2 with `cpu_threads=0` follows it (1 for a 1-CPU replica), so the
    replica passes the number explicitly. The automatic number is at most the CPUs the
    process may run on; without an allotment (outside Ray, or `num_cpus: 0`) it is all of
    them."""
    if configured > 0:
        return configured
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    available = available or os.cpu_count() or 1
    return max(1, min(math.ceil(allotted or 0) or available, available))


class StreamLostError(RuntimeError):
    """The session's decoder state is not on this replica (it restarted, or never opened)."""


class StreamingUnsupportedError(RuntimeError):
    """A streaming call on a model whose engine has no native streaming."""


class BaseEngineDeployment:
    """Constructed by Serve with the model's manifest and the service settings (as dicts)."""

    def __init__(self, manifest: dict[str, Any], settings: dict[str, Any]) -> None:
        self.manifest: ModelManifest = parse_manifest_arg(manifest)
        self.spec: EngineSpec = engine_spec(self.manifest.engine)
        configured: EngineSettings = TheoSettings(**settings).engine(self.spec)
        self.threads = engine_threads(configured.cpu_threads, allotted_cpus())
        self.settings: EngineSettings = configured.model_copy(update={"cpu_threads": self.threads})
        configure_logging("engine")
        configure_tracing("theo-engine", {"theo.model": self.manifest.name})
        self.metrics = EngineMetrics(self.manifest.name, self.manifest.engine)
        self.metrics.threads.set(self.threads)
        # A model added after this pod started is not on its own storage yet: pull it (pinned).
        ensure_model(self.manifest)
        self.backend: STTBackend = self.spec.backend_class()(
            self.manifest, **self.settings.backend_overrides()
        )
        self.instrument()
        started = time.perf_counter()
        self.backend.load()
        self.metrics.model_load.observe(time.perf_counter() - started)
        self._reaper: asyncio.Task[None] | None = None
        self._steps = ThreadPoolExecutor(self.threads, thread_name_prefix="stream-step")
        """Streaming sessions' decoding steps, at most `threads` at once."""

    def instrument(self) -> None:
        """Add engine-specific spans to the backend before it loads (see Whisper)."""

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve `user_config` (the spec's live-tunable settings); nothing to apply here."""

    # -- files -------------------------------------------------------------------------------
    async def transcribe(
        self, audio: Audio, options: TranscribeOptions, trace: Carrier | None = None
    ) -> TranscriptionResult:
        """`trace`: the caller's W3C trace context and request ids (`current_carrier()`)."""
        started = time.perf_counter()
        with continued(trace, "engine.transcribe", **self.attributes(audio)), span("inference"):
            result = await self.backend.transcribe_file(audio, options)
        self.observe_rtf(started, result.duration)
        return result

    async def transcribe_stream(
        self, audio: Audio, options: TranscribeOptions, trace: Carrier | None = None
    ) -> AsyncIterator[SegmentResult | TranscriptionResult]:
        """The whole decode, then its segments as deltas of the text, then the result."""
        result = await self.transcribe(audio, options, trace)
        cursor = 0
        for segment in result.segments:
            # Deltas carry the separators of the joined text, so they concatenate to it.
            found = result.text.find(segment.text, cursor)
            end = found + len(segment.text) if found >= 0 else cursor
            yield replace(segment, text=result.text[cursor:end] if found >= 0 else segment.text)
            cursor = end
        yield result

    def attributes(self, audio: Audio) -> dict[str, Any]:
        return {"theo.model": self.manifest.name, "theo.audio_seconds": len(audio) / SAMPLE_RATE}

    def observe_rtf(self, started: float, duration: float) -> None:
        if duration > 0:
            self.metrics.real_time_factor.observe((time.perf_counter() - started) / duration)

    # -- native streaming sessions -----------------------------------------------------------
    def _streaming(self) -> NativeStreamingBackend[Any]:
        if not isinstance(self.backend, NativeStreamingBackend):
            raise StreamingUnsupportedError(
                f"engine {self.spec.name!r} has no native streaming (model {self.manifest.name})"
            )
        return self.backend

    async def stream_open(
        self,
        *,
        session_id: str,
        options: TranscribeOptions,
        first_segment_id: int = 0,
        time_offset: float = 0.0,
    ) -> None:
        backend = self._streaming()
        self._ensure_reaper(backend)
        backend.open_stream(
            session_id, options, first_segment_id=first_segment_id, time_offset=time_offset
        )

    async def stream_accept(self, *, session_id: str, audio: Audio) -> StreamStep:
        backend = self._streaming()
        stream = backend.get_stream(session_id)
        if stream is None:
            raise StreamLostError(f"no stream {session_id} on this replica")
        self.metrics.stream_steps.inc()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._steps, backend.step, stream, audio)

    async def stream_finish(self, *, session_id: str, audio: Audio) -> list[StreamSegment]:
        backend = self._streaming()
        stream = backend.get_stream(session_id)
        if stream is None:
            raise StreamLostError(f"no stream {session_id} on this replica")
        self.metrics.stream_steps.inc()

        def finish() -> list[StreamSegment]:
            finals = [s for s in backend.step(stream, audio).segments if s.is_final]
            return finals + backend.finish(stream)

        return await asyncio.get_running_loop().run_in_executor(self._steps, finish)

    async def stream_close(self, *, session_id: str) -> None:
        self._streaming().close_stream(session_id)

    def _ensure_reaper(self, backend: NativeStreamingBackend[Any]) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_idle(backend))

    async def _reap_idle(self, backend: NativeStreamingBackend[Any]) -> None:
        """Free the state of sessions whose gateway vanished without closing them."""
        while True:
            await asyncio.sleep(IDLE_STREAM_TIMEOUT_S / 10)
            backend.close_idle_streams(IDLE_STREAM_TIMEOUT_S)

    # -- ops ---------------------------------------------------------------------------------
    async def health(self) -> dict[str, str]:
        state = self.backend.health()
        return {"state": state.state.value, "detail": state.detail}

    def check_health(self) -> None:
        state = self.backend.health()
        if state.state is not HealthState.READY:
            raise RuntimeError(f"{self.manifest.name}: backend not ready: {state.detail}")

    async def metrics_text(self) -> str:
        return self.metrics.exposition()


EngineDeployment = serve.deployment(max_ongoing_requests=256)(BaseEngineDeployment)
"""The deployment of every engine whose spec names no deployment of its own."""
