"""Re-decoding partials for models without streaming state: the open segment is decoded
again as audio arrives and words are confirmed once two decodes agree (LocalAgreement-2)."""

from __future__ import annotations

from dataclasses import replace

from engines.base import Audio, TranscribeOptions, TranscriptionResult, WordTiming
from engines.manifest import Capabilities
from serve.realtime.agreement import LocalAgreement, join_words, trim_loop
from serve.realtime.engine import Transcriber, transcribe_once
from serve.realtime.events import FinalTranscript
from serve.realtime.hypothesis import (
    confidence,
    text_words,
    timed_words,
    trusted,
    usable_segments,
)
from serve.realtime.policy import PartialPolicy

PARTIAL_TEMPERATURES = (0.0,)
FINAL_TEMPERATURES = (0.0, 0.4, 0.8)


class LocalAgreementPolicy(PartialPolicy):
    def __init__(
        self, transcribe: Transcriber, capabilities: Capabilities, timeout_s: float
    ) -> None:
        self.transcribe = transcribe
        self.capabilities = capabilities
        self.timeout_s = timeout_s
        self.agreement = LocalAgreement()
        self.looped = False

    def options(self, options: TranscribeOptions, *, final: bool) -> TranscribeOptions:
        return replace(
            options,
            temperatures=FINAL_TEMPERATURES if final else PARTIAL_TEMPERATURES,
            word_timestamps=final and self.capabilities.word_timestamps,
            vad_filter=final and options.vad_filter,
            beam_size=None if final else 1,
        )

    def open_segment(self) -> None:
        self.agreement = LocalAgreement()

    async def partial(self, audio: Audio, options: TranscribeOptions) -> str | None:
        decode = self.options(options, final=False)
        return self.observe(await transcribe_once(self.transcribe, audio, decode, self.timeout_s))

    def observe(self, result: TranscriptionResult) -> str | None:
        segments = usable_segments(result)
        words, looped = trim_loop(text_words(segments))
        self.looped |= looped
        if not self.agreement.update(words, trusted(segments)):
            return None
        return join_words(self.agreement.confirmed)

    async def decode_final(self, audio: Audio, options: TranscribeOptions) -> TranscriptionResult:
        decode = self.options(options, final=True)
        return await transcribe_once(self.transcribe, audio, decode, self.timeout_s)

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
