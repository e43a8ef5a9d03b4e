"""The WeNet (CTC) engine deployment: whole files, and stateful streaming sessions.

Streaming calls carry `session_id=` as a keyword; the session-affinity request router
(`serve.sticky`) keeps every call of a session on the replica that holds its decoder state.
One model per replica, shared by all its sessions; each session has its own decoder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ray import serve

from engines.base import (
    Audio,
    SegmentResult,
    StreamSegment,
    TranscribeOptions,
    TranscriptionResult,
)
from engines.manifest import parse_manifest_arg
from serve.deployments.ops import EngineOps
from serve.settings import TheoSettings
from serve.telemetry.metrics import EngineMetrics
from serve.telemetry.tracing import Carrier, continued, span

if TYPE_CHECKING:
    from engines.wenet.backend import WenetBackend

IDLE_STREAM_TIMEOUT_S = 300.0


class StreamLostError(RuntimeError):
    """The session's decoder state is not on this replica (it restarted, or never opened)."""


@serve.deployment(max_ongoing_requests=256)
class WenetDeployment(EngineOps):
    backend: WenetBackend

    def __init__(self, manifest: dict[str, Any], settings: dict[str, Any]) -> None:
        from engines.wenet.backend import WenetBackend

        self.manifest = parse_manifest_arg(manifest)
        spec = TheoSettings(**settings).wenet
        overrides = {"num_threads": spec.cpu_threads}
        self.backend = WenetBackend(self.manifest, **overrides)
        self.metrics = EngineMetrics(self.manifest.name, self.manifest.engine.value)
        started = time.perf_counter()
        self.backend.load()
        self.metrics.model_load.observe(time.perf_counter() - started)
        self._reaper: asyncio.Task[None] | None = None

    # -- files -------------------------------------------------------------------------------
    async def transcribe(
        self, audio: Audio, options: TranscribeOptions, trace: Carrier | None = None
    ) -> TranscriptionResult:
        """`trace`: the caller's W3C trace context and request ids (`current_carrier()`)."""
        started = time.perf_counter()
        with continued(trace, "engine.transcribe"), span("inference"):
            result = await asyncio.to_thread(self.backend.transcribe_file_sync, audio, options)
        if result.duration > 0:
            elapsed = time.perf_counter() - started
            self.metrics.real_time_factor.observe(elapsed / result.duration)
        return result

    async def transcribe_stream(
        self, audio: Audio, options: TranscribeOptions, trace: Carrier | None = None
    ) -> AsyncIterator[SegmentResult | TranscriptionResult]:
        result = await self.transcribe(audio, options, trace)
        cursor = 0
        for segment in result.segments:
            # Deltas carry the separators of the joined text, so they concatenate to it.
            found = result.text.find(segment.text, cursor)
            end = found + len(segment.text) if found >= 0 else cursor
            yield replace(segment, text=result.text[cursor:end] if found >= 0 else segment.text)
            cursor = end
        yield result

    # -- sessions ----------------------------------------------------------------------------
    async def stream_open(
        self,
        *,
        session_id: str,
        options: TranscribeOptions,
        first_segment_id: int = 0,
        time_offset: float = 0.0,
    ) -> None:
        self._ensure_reaper()
        self.backend.open_stream(
            session_id, options, first_segment_id=first_segment_id, time_offset=time_offset
        )

    async def stream_accept(self, *, session_id: str, audio: Audio) -> list[StreamSegment]:
        stream = self.backend.get_stream(session_id)
        if stream is None:
            raise StreamLostError(f"no stream {session_id} on this replica")
        return await asyncio.to_thread(self.backend.accept, stream, audio)

    async def stream_finish(self, *, session_id: str) -> list[StreamSegment]:
        stream = self.backend.get_stream(session_id)
        if stream is None:
            raise StreamLostError(f"no stream {session_id} on this replica")
        return await asyncio.to_thread(self.backend.finish, stream)

    async def stream_close(self, *, session_id: str) -> None:
        self.backend.close_stream(session_id)

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_idle())

    async def _reap_idle(self) -> None:
        """Free the state of sessions whose gateway vanished without closing them."""
        while True:
            await asyncio.sleep(IDLE_STREAM_TIMEOUT_S / 10)
            self.backend.close_idle_streams(IDLE_STREAM_TIMEOUT_S)

    # -- ops ---------------------------------------------------------------------------------
    async def active_streams(self) -> int:
        return self.backend.num_streams
