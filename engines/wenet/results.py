"""Decoder updates -> the engine-neutral result types of `engines.base`."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from engines.base import SegmentResult, StreamSegment, WordTiming
from engines.wenet.alignment import TimedWord, split_on_pauses, text_of
from engines.wenet.decoder import Update


def word_timing(word: TimedWord) -> WordTiming:
    return WordTiming(
        word=word.word,
        start=round(word.start, 3),
        end=round(word.end, 3),
        probability=round(word.probability, 4),
    )


def stream_segment(update: Update, language: str | None) -> StreamSegment:
    return StreamSegment(
        segment_id=update.segment_id,
        text=update.text,
        is_final=update.is_final,
        start=round(update.start, 3),
        end=round(update.end, 3),
        confidence=round(update.confidence, 4),
        language=language,
        words=tuple(word_timing(w) for w in update.words),
    )


def compression_ratio(text: str) -> float:
    """Whisper's repetition measure, computed the same way so both engines report it."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def file_segments(
    finals: Sequence[Update],
    *,
    min_pause_s: float,
    max_length_s: float,
    with_words: bool,
) -> list[SegmentResult]:
    """Finals split at pauses into numbered segments (a full-context decode has one final
    for the whole file; chunked decodes have one per endpoint)."""
    segments: list[SegmentResult] = []
    for final in finals:
        for words in split_on_pauses(
            final.words, min_pause_s=min_pause_s, max_length_s=max_length_s
        ):
            units = [u for u in final.units if words[0].start <= u.start and u.end <= words[-1].end]
            logps = [u.logp for u in units]
            text = text_of(words)
            segments.append(
                SegmentResult(
                    id=len(segments),
                    start=round(words[0].start, 3),
                    end=round(words[-1].end, 3),
                    text=text,
                    tokens=[u.unit_id for u in units],
                    avg_logprob=sum(logps) / len(logps) if logps else final.avg_logprob,
                    compression_ratio=compression_ratio(text),
                    no_speech_prob=0.0,
                    words=[word_timing(w) for w in words] if with_words else [],
                )
            )
    return segments
