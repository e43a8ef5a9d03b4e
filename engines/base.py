"""The interfaces engines implement, and the engine-neutral result types.

- `STTBackend`: every engine. The serving deployment (`serve.deployments.engine`) calls
  `load`, `health` and `transcribe_file`.
- `NativeStreamingBackend`: engines whose models keep per-session decoder state
  (`new_stream`, `decode`, `flush`, optionally `samples_needed`). The deployment drives
  `open_stream` / `step` / `close_stream` with one call per decoding step of a realtime
  session (sticky replicas), and
  `close_idle_streams` for sessions whose gateway vanished. Engines without it still serve
  realtime sessions: the gateway re-decodes the open segment through `transcribe_file`
  (LocalAgreement).

Results are plain dataclasses so they cross Ray handle calls (pickled) and stay free of any
engine library type.
"""

from __future__ import annotations

import abc
import asyncio
import math
import threading
import time
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
    condition_on_previous_text: bool = True
    """Decode each window of a long input with the text before it as prompt context."""
    draft: bool = False
    """A provisional decode (a realtime partial, replaced by the next one): the engine may skip
    second passes that only refine the result."""


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


@dataclass(frozen=True)
class StreamStep:
    """A streaming replica's answer to a chunk of audio: the hypotheses it decoded, and how
    much more audio its next decoding step needs (None: the engine does not say), so that a
    caller sends audio once per engine step instead of once per message."""

    segments: list[StreamSegment]
    needed_samples: int | None = None


def stream_result(
    finals: list[StreamSegment], duration: float, language: str
) -> TranscriptionResult:
    """A stream's finals as a transcription of its audio (times from the stream's start)."""
    segments = [
        SegmentResult(
            id=i,
            start=f.start,
            end=f.end,
            text=f.text,
            avg_logprob=math.log(max(f.confidence, 1e-6)),
            words=list(f.words),
        )
        for i, f in enumerate(f for f in finals if f.text.strip())
    ]
    text = " ".join(s.text.strip() for s in segments)
    return TranscriptionResult(text=text, language=language, duration=duration, segments=segments)


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


@dataclass(kw_only=True)
class EngineStream:
    """One streaming session's state on a replica; engines subclass it with their decoder."""

    session_id: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    opened_at: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    closed: bool = False


StreamT = TypeVar("StreamT", bound=EngineStream)


class NativeStreamingBackend(STTBackend, Generic[StreamT]):
    """An engine that decodes audio as it arrives and keeps each session's state (`StreamT`).

    An engine implements `new_stream`, `decode` and `flush`; the session table (replacing a
    session reopened under the same id, closing, idle sessions, thread safety) is here.
    Partials (`is_final=False`) replace each other until the final of the same `segment_id`;
    ids increase by one per final; times are seconds on the session's clock. The blocking
    methods run in worker threads of the replica; sessions may run concurrently.
    """

    def __init__(self, manifest: ModelManifest) -> None:
        super().__init__(manifest)
        self._streams: dict[str, StreamT] = {}
        self._streams_lock = threading.Lock()

    # -- what an engine implements -------------------------------------------------------------
    @abc.abstractmethod
    def new_stream(
        self,
        session_id: str,
        options: TranscribeOptions,
        *,
        first_segment_id: int = 0,
        time_offset: float = 0.0,
    ) -> StreamT:
        """A fresh session state. `first_segment_id` and `time_offset` let a session resume on
        another replica by replaying its audio: ids and times continue where it was."""

    @abc.abstractmethod
    def decode(self, stream: StreamT, audio: Audio) -> list[StreamSegment]:
        """Decode a chunk of audio (any length); called under the stream's lock."""

    @abc.abstractmethod
    def flush(self, stream: StreamT) -> list[StreamSegment]:
        """End of input: the remaining finals; called under the stream's lock."""

    def samples_needed(self, stream: StreamT) -> int | None:
        """Audio (samples) the stream needs before `decode` can produce anything new, or None
        if the engine cannot tell (callers then send audio at their own pace)."""
        return None

    # -- the session table ---------------------------------------------------------------------
    def open_stream(
        self,
        session_id: str,
        options: TranscribeOptions,
        *,
        first_segment_id: int = 0,
        time_offset: float = 0.0,
    ) -> StreamT:
        """A new decoding session, replacing one with the same id."""
        stream = self.new_stream(
            session_id, options, first_segment_id=first_segment_id, time_offset=time_offset
        )
        with self._streams_lock:
            old = self._streams.pop(session_id, None)
            self._streams[session_id] = stream
        if old is not None:
            old.closed = True
        return stream

    def get_stream(self, session_id: str) -> StreamT | None:
        with self._streams_lock:
            return self._streams.get(session_id)

    @property
    def num_streams(self) -> int:
        return len(self._streams)

    def accept(self, stream: StreamT, audio: Audio) -> list[StreamSegment]:
        """Decode a chunk of audio; blocking: call it from a worker thread in async code."""
        return self.step(stream, audio).segments

    def step(self, stream: StreamT, audio: Audio) -> StreamStep:
        """`accept`, and how much audio the next decoding step needs. Blocking."""
        with stream.lock:
            if stream.closed:
                raise RuntimeError(f"stream {stream.session_id} is closed")
            stream.last_active = time.monotonic()
            segments = self.decode(stream, audio)
            return StreamStep(segments, self.samples_needed(stream))

    def finish(self, stream: StreamT) -> list[StreamSegment]:
        """End of input: the remaining finals; the stream is closed afterwards. Blocking."""
        with stream.lock:
            segments = [] if stream.closed else self.flush(stream)
        self.close_stream(stream)
        return segments

    def close_stream(self, stream: StreamT | str) -> None:
        """Drop a session's state (client gone) without decoding the rest."""
        session_id = stream if isinstance(stream, str) else stream.session_id
        with self._streams_lock:
            found = self._streams.get(session_id)
            mine = found is not None and (isinstance(stream, str) or found is stream)
            if mine:
                del self._streams[session_id]
        if found is not None and mine:
            found.closed = True
        if not isinstance(stream, str):
            stream.closed = True

    def close_idle_streams(self, max_idle_s: float) -> list[str]:
        """Close sessions without audio for `max_idle_s`; returns their ids."""
        now = time.monotonic()
        with self._streams_lock:
            idle = [s for s in self._streams.values() if now - s.last_active > max_idle_s]
        for stream in idle:
            self.close_stream(stream)
        return [s.session_id for s in idle]

    def close_all_streams(self) -> None:
        with self._streams_lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.closed = True

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
