"""The one interface every engine implements, and the engine-neutral result types.

Results are plain dataclasses so they cross Ray handle calls (pickled) and stay free of any
engine library type.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

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
    """A loaded model of one engine. Engine libraries are imported inside `load`, not here."""

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
        """Transcribe a whole utterance or file (any length)."""

    def transcribe_stream(
        self, chunks: AsyncIterator[Audio], options: TranscribeOptions
    ) -> AsyncIterator[StreamSegment]:
        """Transcribe audio as it arrives, yielding partials then a final per segment.

        Engines without native streaming leave this unimplemented; the realtime session then
        drives `transcribe_file` over its ring buffer with a partial policy.
        """
        raise NotImplementedError(f"{type(self).__name__} has no native streaming")
