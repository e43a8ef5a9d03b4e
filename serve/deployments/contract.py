"""What the gateway calls on an engine deployment's handle: the serving contract.

Every engine deployment implements `FileServing`; deployments of models that stream natively
(`engines.spec.streams_natively`) also implement `StreamServing`, whose calls carry
`session_id=` as a keyword so the session-affinity router (`serve.sticky`) keeps a session on
the replica holding its decoder state. `BaseEngineDeployment` implements both for any
`STTBackend` (streaming for `NativeStreamingBackend`s); the gateway only ever calls these
methods, through Ray Serve handles.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from engines.base import (
    Audio,
    SegmentResult,
    StreamSegment,
    StreamStep,
    TranscribeOptions,
    TranscriptionResult,
)
from serve.telemetry.tracing import Carrier


@runtime_checkable
class FileServing(Protocol):
    async def transcribe(
        self, audio: Audio, options: TranscribeOptions, trace: Carrier | None = None
    ) -> TranscriptionResult:
        """The whole result. `trace`: the caller's W3C trace context and request ids."""

    def transcribe_stream(
        self, audio: Audio, options: TranscribeOptions, trace: Carrier | None = None
    ) -> AsyncIterator[SegmentResult | TranscriptionResult]:
        """Segments in time order (their texts concatenate to the result's), then the result
        (REST `stream=true`)."""

    async def health(self) -> dict[str, str]:
        """`{"state": "loading" | "ready" | "failed", "detail": ...}` of the replica's model."""

    def check_health(self) -> None:
        """Serve's replica health check: raises unless the model is ready."""

    async def metrics_text(self) -> str:
        """The replica's Prometheus exposition (merged into the gateway's `/metrics`)."""

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve `user_config`: the engine's live-tunable settings (`EngineSpec.user_config`)."""


@runtime_checkable
class StreamServing(Protocol):
    async def stream_open(
        self,
        *,
        session_id: str,
        options: TranscribeOptions,
        first_segment_id: int = 0,
        time_offset: float = 0.0,
    ) -> None: ...

    async def stream_accept(self, *, session_id: str, audio: Audio) -> StreamStep:
        """Partials and finals for this audio, and how much audio the engine's next step needs
        (the caller sends it when it has that much, one call per step); raises
        `StreamLostError` if the session's state is not on this replica (the caller reopens
        and replays)."""

    async def stream_finish(self, *, session_id: str, audio: Audio) -> list[StreamSegment]:
        """The last audio of the stream, then end of input: the stream's remaining finals
        (the stream is closed). Raises `StreamLostError` like `stream_accept`."""

    async def stream_close(self, *, session_id: str) -> None: ...
