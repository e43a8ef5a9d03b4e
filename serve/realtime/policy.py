"""Partial policies: how an engine's output becomes partials and finals in a session.

The policy is chosen in exactly one place (`choose_policy`) from the manifest's architecture:
encoder-decoder models re-decode the open segment and confirm words with LocalAgreement-2;
CTC models stream native partials (the WeNet engine brings that policy; until then a CTC
model cannot open a realtime session).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from engines.base import Audio, TranscribeOptions, TranscriptionResult, WordTiming
from engines.manifest import Architecture, Capabilities, ModelManifest
from serve.errors import UnsupportedCapabilityError
from serve.realtime.agreement import LocalAgreement, join_words, trim_loop
from serve.realtime.context import DecodeContext
from serve.realtime.engine import Transcriber, transcribe_once
from serve.realtime.events import FinalTranscript
from serve.realtime.hypothesis import (
    confidence,
    text_words,
    timed_words,
    trusted,
    usable_segments,
)

PARTIAL_TEMPERATURES = (0.0,)
FINAL_TEMPERATURES = (0.0, 0.4, 0.8)


@dataclass(frozen=True)
class DecodeRequest:
    language: str | None
    context: DecodeContext
    find_speech: bool = False
    """The session ran no VAD over this audio (client commits): the final decode finds the
    speech itself, as REST does by default, so committed silence stays silent."""


class PartialPolicy(abc.ABC):
    """Per-session streaming logic over one engine. Segments are decoded from their start;
    `decode_final` is one attempt, so the session can re-run it from its ring buffer."""

    looped: bool = False
    """A repetition loop was seen: the session stops giving the engine prompt context."""
    partial_interval_ms: int | None = None
    """New audio that triggers a partial; None uses the session setting."""
    gated: bool = True
    """Partials wait for the replica's partial gate (they compete with finals for a shared
    batcher). Native streams feed state that later partials need, so they are not gated."""

    @abc.abstractmethod
    def open_segment(self) -> None:
        """A new segment starts: forget the previous one's partial state."""

    @abc.abstractmethod
    async def partial(self, audio: Audio, request: DecodeRequest) -> str | None:
        """The open segment so far; returns the new partial text, or None if unchanged."""

    def observe(self, result: TranscriptionResult) -> str | None:
        """A whole-segment decode made for another reason (a speculative final) may also
        advance the partials; returns the new partial text, or None."""
        return None

    @abc.abstractmethod
    async def decode_final(self, audio: Audio, request: DecodeRequest) -> TranscriptionResult:
        """One decode of the closed segment's audio (may raise; the caller retries)."""

    @abc.abstractmethod
    def finish(self, result: TranscriptionResult, offset_ms: int) -> FinalTranscript | None:
        """The final of the segment from its decode; None when it held no speech."""


class LocalAgreementPolicy(PartialPolicy):
    def __init__(
        self, transcribe: Transcriber, capabilities: Capabilities, timeout_s: float
    ) -> None:
        self.transcribe = transcribe
        self.capabilities = capabilities
        self.timeout_s = timeout_s
        self.agreement = LocalAgreement()
        self.looped = False

    def options(self, request: DecodeRequest, *, final: bool) -> TranscribeOptions:
        return TranscribeOptions(
            language=request.language,
            prompt=request.context.prompt,
            hot_words=request.context.hot_words,
            temperatures=FINAL_TEMPERATURES if final else PARTIAL_TEMPERATURES,
            word_timestamps=final and self.capabilities.word_timestamps,
            vad_filter=final and request.find_speech,
            beam_size=None if final else 1,
        )

    def open_segment(self) -> None:
        self.agreement = LocalAgreement()

    async def partial(self, audio: Audio, request: DecodeRequest) -> str | None:
        options = self.options(request, final=False)
        return self.observe(await transcribe_once(self.transcribe, audio, options, self.timeout_s))

    def observe(self, result: TranscriptionResult) -> str | None:
        segments = usable_segments(result)
        words, looped = trim_loop(text_words(segments))
        self.looped |= looped
        if not self.agreement.update(words, trusted(segments)):
            return None
        return join_words(self.agreement.confirmed)

    async def decode_final(self, audio: Audio, request: DecodeRequest) -> TranscriptionResult:
        options = self.options(request, final=True)
        return await transcribe_once(self.transcribe, audio, options, self.timeout_s)

    def finish(self, result: TranscriptionResult, offset_ms: int) -> FinalTranscript | None:
        segments = usable_segments(result)
        timings = timed_words(segments)
        words = [w.word for w in timings] if timings else text_words(segments)
        words, looped = trim_loop(words)
        self.looped |= looped
        timings = timings[: len(words)]
        stitched, index = self.agreement.stitch(words)
        if not stitched:
            return None
        confirmed = len(stitched) - (len(words) - index)
        duration = result.duration
        aligned = _retime(stitched, confirmed, timings, index, duration) if timings else ()
        if aligned:
            start, end = aligned[0].start, aligned[-1].end
        elif segments:
            start, end = segments[0].start, segments[-1].end
        else:
            start, end = 0.0, duration
        offset = offset_ms / 1000
        return FinalTranscript(
            text=join_words(stitched),
            start_ms=offset_ms + round(start * 1000),
            end_ms=offset_ms + round(end * 1000),
            language=result.language,
            confidence=confidence(segments),
            words=tuple(
                WordTiming(w.word, round(w.start + offset, 3), round(w.end + offset, 3))
                for w in aligned
            ),
            audio_ms=round(duration * 1000),
        )


def _retime(
    stitched: list[str],
    confirmed: int,
    timings: list[WordTiming],
    index: int,
    duration: float,
) -> tuple[WordTiming, ...]:
    """Timings for the stitched words: the final decode's own for its words; when the
    confirmed prefix differs from the decode's, the decode's span for it, split evenly."""
    head: list[WordTiming] = []
    if confirmed == index:
        head = [WordTiming(w, t.start, t.end) for w, t in zip(stitched, timings, strict=False)]
        head = head[:confirmed]
    elif confirmed:
        span_start = timings[0].start if index else 0.0
        span_end = timings[index - 1].end if index else (timings[0].start if timings else duration)
        step = max(span_end - span_start, 0.0) / confirmed
        head = [
            WordTiming(w, span_start + i * step, span_start + (i + 1) * step)
            for i, w in enumerate(stitched[:confirmed])
        ]
    tail = [WordTiming(w.word, w.start, w.end) for w in timings[index:]]
    return tuple(head + tail)


def choose_policy(
    manifest: ModelManifest, transcribe: Transcriber, timeout_s: float, handle: Any = None
) -> PartialPolicy:
    """The one place a session's partial policy is chosen, from the model's architecture.

    `handle`: the engine deployment's handle, for engines that stream natively."""
    architecture = manifest.capabilities.architecture
    if architecture is Architecture.ENCODER_DECODER:
        return LocalAgreementPolicy(transcribe, manifest.capabilities, timeout_s)
    if handle is None:
        raise UnsupportedCapabilityError(
            f"The model '{manifest.name}' ({architecture.value}) streams natively and needs "
            "its streaming replicas.",
            param="model",
        )
    from serve.realtime.ctc import NativePartialPolicy

    return NativePartialPolicy(handle, transcribe, manifest.capabilities, timeout_s)
