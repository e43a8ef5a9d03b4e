"""Rendering a `TranscriptionResult` in each OpenAI `response_format`. Pure functions."""

from __future__ import annotations

from typing import Any

from engines.base import TranscriptionResult
from engines.languages import language_name
from serve.gateway.protocol import (
    Granularity,
    Segment,
    TranscriptionJson,
    TranscriptionVerbose,
    UsageDuration,
    Word,
)


def format_timestamp(seconds: float, decimal_marker: str) -> str:
    """`HH:MM:SS<marker>mmm` as SRT (",") and WebVTT (".") need."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def usage(result: TranscriptionResult) -> UsageDuration:
    return UsageDuration(seconds=round(result.duration, 3))


def render_json(result: TranscriptionResult) -> dict[str, Any]:
    return TranscriptionJson(text=result.text, usage=usage(result)).model_dump()


def render_verbose_json(
    result: TranscriptionResult, granularities: list[Granularity]
) -> dict[str, Any]:
    body = TranscriptionVerbose(
        task=result.task,
        language=language_name(result.language),
        duration=result.duration,
        text=result.text,
        usage=usage(result),
    )
    if "segment" in granularities:
        body.segments = [
            Segment(
                id=s.id,
                seek=s.seek,
                start=s.start,
                end=s.end,
                text=s.text,
                tokens=s.tokens,
                temperature=s.temperature,
                avg_logprob=s.avg_logprob,
                compression_ratio=s.compression_ratio,
                no_speech_prob=s.no_speech_prob,
            )
            for s in result.segments
        ]
    if "word" in granularities:
        body.words = [Word(word=w.word.strip(), start=w.start, end=w.end) for w in result.words]
    return body.model_dump(exclude_none=True)


def render_text(result: TranscriptionResult) -> str:
    return result.text + "\n"


def render_srt(result: TranscriptionResult) -> str:
    blocks = [
        f"{n}\n{format_timestamp(s.start, ',')} --> {format_timestamp(s.end, ',')}\n"
        f"{s.text.strip()}\n"
        for n, s in enumerate(result.segments, start=1)
    ]
    return "\n".join(blocks)


def render_vtt(result: TranscriptionResult) -> str:
    cues = [
        f"{format_timestamp(s.start, '.')} --> {format_timestamp(s.end, '.')}\n{s.text.strip()}\n"
        for s in result.segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)
