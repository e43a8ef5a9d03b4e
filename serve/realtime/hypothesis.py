"""Reading an engine result as streaming text: silence guard, words, timings, confidence. Pure."""

from __future__ import annotations

import math

from engines.base import SegmentResult, TranscriptionResult, WordTiming
from serve.realtime.agreement import normalize_word, split_words

NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -0.7
"""Stricter than the batch path's -1.0: a streaming segment is short and has no context."""
CONFIRM_LOGPROB = -0.8
"""Partial decodes scoring below this mean token log-probability confirm no words."""


def usable_segments(result: TranscriptionResult) -> list[SegmentResult]:
    """Segments that are speech: not (likely no-speech and unlikely text), not empty."""
    return [
        s
        for s in result.segments
        if s.text.strip()
        and not (s.no_speech_prob > NO_SPEECH_THRESHOLD and s.avg_logprob < LOGPROB_THRESHOLD)
    ]


def text_words(segments: list[SegmentResult]) -> list[str]:
    return split_words(" ".join(s.text for s in segments))


def timed_words(segments: list[SegmentResult]) -> list[WordTiming]:
    """Word timings of the segments, without punctuation-only entries; words stripped."""
    return [
        WordTiming(w.word.strip(), w.start, w.end, w.probability)
        for s in segments
        for w in s.words
        if normalize_word(w.word)
    ]


def confidence(segments: list[SegmentResult]) -> float:
    """exp(mean token log-probability), weighted by text length; in [0, 1]."""
    if not segments:
        return 0.0
    return round(min(1.0, math.exp(mean_logprob(segments))), 4)


def mean_logprob(segments: list[SegmentResult]) -> float:
    weights = [max(len(s.text.strip()), 1) for s in segments]
    if not segments:
        return -math.inf
    return sum(s.avg_logprob * w for s, w in zip(segments, weights, strict=True)) / sum(weights)


def trusted(segments: list[SegmentResult]) -> bool:
    return mean_logprob(segments) >= CONFIRM_LOGPROB
