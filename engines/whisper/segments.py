"""Turning Whisper's timestamped token stream into segments, and judging a decode. Pure."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

TIME_PRECISION = 0.02
"""Seconds per Whisper timestamp token."""

COMPRESSION_RATIO_THRESHOLD = 2.4
LOGPROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6


@dataclass(frozen=True)
class TimedTokens:
    """Tokens of one segment, times relative to the window start."""

    start: float
    end: float
    tokens: list[int]
    text_tokens: list[int]


def split_timestamped(
    tokens: list[int], timestamp_begin: int, eot: int, window_duration: float
) -> list[TimedTokens]:
    """Cut `<|t0|> text <|t1|><|t1|> text <|t2|>` into (t0, t1, text), (t1, t2, text).

    Text left open at the end (no closing timestamp) ends at the window's end. Times are
    clamped to the window.
    """
    out: list[TimedTokens] = []
    start: float | None = None
    pending: list[int] = []
    text: list[int] = []

    def close(end: float) -> None:
        begin = min(start if start is not None else 0.0, window_duration)
        out.append(TimedTokens(begin, max(begin, min(end, window_duration)), pending, text))

    for token in tokens:
        if token >= timestamp_begin:
            time = (token - timestamp_begin) * TIME_PRECISION
            if text:
                pending.append(token)
                close(time)
                pending, text, start = [], [], None
            else:
                start, pending = time, [token]
        elif token < eot:
            pending.append(token)
            text.append(token)
    if text:
        close(window_duration)
    return out


def compression_ratio(text: str) -> float:
    """gzip ratio of the text: high values mean repetition loops."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def is_silence(no_speech_prob: float, avg_logprob: float) -> bool:
    return no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD


def needs_fallback(ratio: float, avg_logprob: float) -> bool:
    return ratio > COMPRESSION_RATIO_THRESHOLD or avg_logprob < LOGPROB_THRESHOLD
