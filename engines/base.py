"""The interfaces engines implement, and the engine-neutral result types.

- `STTBackend`: every engine. The serving deployment (`serve.deployments.engine`) calls
  `load`, `health` and `transcribe_file`.
- `NativeStreamingBackend`: engines whose models keep per-session decoder state. The
  deployment drives `open_stream` / `accept` / `close_stream` with one call per audio chunk
  of a realtime session (sticky replicas), and `close_idle_streams` for sessions whose gateway
  vanished. Engines without it still serve realtime sessions: the gateway re-decodes the open
  segment through `transcribe_file` (LocalAgreement).

Results are plain dataclasses so they cross Ray handle calls (pickled) and stay free of any
engine library type.
"""

from __future__ import annotations

import abc
import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from engines.manifest import Capabilities, ModelManifest

SAMPLE_RATE = 16_000
Audio = npt.NDArray[np.float32]
"""Mono float32 PCM at `SAMPLE_RATE`, values in [-1, 1]."""

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class TranscribeOptions:
    """What a caller may ask of any engine; an engine ignores what its capabilities lack."""

    language: str | None = None
    task: Task = "transcribe"
    prompt: str | None = None
    hot_words: tuple[str, ...] = ()
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    word_timestamps: bool = False
    vad_filter: bool = True
    beam_size: int | None = None


@dataclass(frozen=True)
class WordTiming:
    word: str
    start: float
    end: float
    probability: float = 1.0


@dataclass
class SegmentResult:
    """One transcribed segment; times in seconds from the start of the submitted audio."""

    id: int
    start: float
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)
    seek: int = 0
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: list[WordTiming] = field(default_factory=list)


@dataclass
class TranscriptionResult:
    text: str
    language: str
    duration: float
    segments: list[SegmentResult]
    task: Task = "transcribe"
    language_probability: float = 1.0
    batch_sizes: list[int] = field(default_factory=list)
    """The size of each engine batch this request's audio was decoded in (observability)."""

    @property
    def words(self) -> list[WordTiming]:
        return [w for s in self.segments for w in s.words]


@dataclass(frozen=True)
class StreamSegment:
    """A streaming hypothesis: partials replace each other until the final of `segment_id`."""

    segment_id: int
    text: str
    is_final: bool
    start: float
    end: float
    confidence: float = 1.0
    language: str | None = None
    words: tuple[WordTiming, ...] = ()


class HealthState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class Health:
    state: HealthState
    detail: str = ""


class STTBackend(abc.ABC):
    """A loaded model of one engine. Engine libraries are imported inside `load`, not here.

    Constructed as `Backend(manifest, **settings.backend_overrides())` in each replica.
    """

    def __init__(self, manifest: ModelManifest) -> None:
        self.manifest = manifest

    @property
    def capabilities(self) -> Capabilities:
        return self.manifest.capabilities

    @abc.abstractmethod
    def load(self) -> None:
        """Load weights; blocking, called once per replica."""

    @abc.abstractmethod
    def unload(self) -> None: ...

    @abc.abstractmethod
    def health(self) -> Health: ...

    @abc.abstractmethod
    async def transcribe_file(
        self, audio: Audio, options: TranscribeOptions
    ) -> TranscriptionResult:
        """Transcribe a whole utterance or file (any length). Run blocking work in a thread
        (`asyncio.to_thread`): the replica's event loop serves other calls meanwhile."""


StreamT = TypeVar("StreamT")


class StreamNotFoundError(KeyError):
    """The session's decoder state is not on this replica (it restarted, or never opened)."""


class NativeStreamingBackend(STTBackend, Generic[StreamT]):
    """An engine that decodes audio as it arrives and keeps each session's state (`StreamT`).

    Partials (`is_final=False`) replace each other until the final of the same `segment_id`;
    ids increase by one per final; times are seconds on the session's clock. The blocking
    methods run in a worker thread of the replica; sessions may run concurrently.
    """

    @abc.abstractmethod
    def open_stream(
        self,
        session_id: str,
        options: TranscribeOptions,
        *,
        first_segment_id: int = 0,
        time_offset: float = 0.0,
    ) -> StreamT:
        """A new session (replacing one with the same id). `first_segment_id` and
        `time_offset` let a session resume on another replica by replaying its audio."""

    @abc.abstractmethod
    def get_stream(self, session_id: str) -> StreamT | None: ...

    @abc.abstractmethod
    def accept(self, stream: StreamT, audio: Audio) -> list[StreamSegment]:
        """Decode a chunk of audio (any length); blocking."""

    @abc.abstractmethod
    def finish(self, stream: StreamT) -> list[StreamSegment]:
        """End of input: the remaining finals; the stream is closed afterwards. Blocking."""

    @abc.abstractmethod
    def close_stream(self, stream: StreamT | str) -> None:
        """Drop a session's state without decoding the rest."""

    @abc.abstractmethod
    def close_idle_streams(self, max_idle_s: float) -> list[str]:
        """Close sessions without audio for `max_idle_s`; returns their ids."""

    async def transcribe_stream(
        self, chunks: AsyncIterator[Audio], options: TranscribeOptions
    ) -> AsyncIterator[StreamSegment]:
        """In-process streaming over the same contract (tests, benchmarks)."""
        stream = self.open_stream(f"local-{uuid.uuid4().hex}", options)
        try:
            async for chunk in chunks:
                for segment in await asyncio.to_thread(self.accept, stream, chunk):
                    yield segment
            for segment in await asyncio.to_thread(self.finish, stream):
                yield segment
        finally:
            self.close_stream(stream)
