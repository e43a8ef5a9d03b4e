"""Session events -> native protocol events (`protocol.py`). Pure."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from serve.realtime.events import (
    FramesDropped,
    PartialTranscript,
    Problem,
    RateLimited,
    SegmentClosed,
    SegmentDone,
    SegmentFailed,
    SessionEnded,
    SessionEvent,
    SessionHeld,
    SpeechStarted,
)
from serve.realtime.protocol import (
    ErrorEvent,
    FramesDroppedEvent,
    RateLimitEvent,
    SessionClosedEvent,
    SessionHoldEvent,
    SpeechEndEvent,
    SpeechStartEvent,
    TranscriptFinalEvent,
    TranscriptPartialEvent,
    WordEvent,
)


def render_native(event: SessionEvent) -> list[BaseModel]:
    if isinstance(event, SpeechStarted):
        return [SpeechStartEvent(timestamp_ms=event.timestamp_ms)]
    if isinstance(event, PartialTranscript):
        return [
            TranscriptPartialEvent(
                text=event.text,
                stable=event.stable,
                unstable=event.unstable,
                segment_id=event.segment_id,
                timestamp_ms=event.timestamp_ms,
            )
        ]
    if isinstance(event, SegmentClosed):
        if event.speech_end_ms is None:
            return []
        return [SpeechEndEvent(timestamp_ms=event.speech_end_ms)]
    if isinstance(event, SegmentDone | SegmentFailed):
        out: list[BaseModel] = []
        if isinstance(event, SegmentFailed):
            out.append(
                ErrorEvent(
                    code="engine_unavailable",
                    message=f"Transcription failed after retries ({event.message}); the "
                    "audio is kept and transcribed with the next utterance.",
                    recoverable=True,
                )
            )
        elif event.final is not None:
            final = event.final
            out.append(
                TranscriptFinalEvent(
                    text=final.text,
                    segment_id=event.segment_id,
                    start_ms=final.start_ms,
                    end_ms=final.end_ms,
                    language=final.language,
                    confidence=final.confidence,
                    words=[WordEvent(word=w.word, start=w.start, end=w.end) for w in final.words],
                )
            )
        return out
    if isinstance(event, SessionHeld):
        return [
            SessionHoldEvent(timestamp_ms=event.timestamp_ms, hold_timeout_ms=event.hold_timeout_ms)
        ]
    if isinstance(event, RateLimited):
        message = (
            f"Audio is arriving at {event.ratio:.1f}x real time; pause {event.delay_ms} ms "
            "and send at real time."
        )
        return [RateLimitEvent(delay_ms=event.delay_ms, message=message)]
    if isinstance(event, FramesDropped):
        message = (
            f"{event.dropped_ms} ms of audio were dropped: the session's buffer of audio "
            "waiting for transcription is full."
        )
        return [FramesDroppedEvent(dropped_ms=event.dropped_ms, message=message)]
    if isinstance(event, Problem):
        return [
            ErrorEvent(
                code=event.code,
                message=event.message,
                recoverable=event.recoverable,
                param=event.param,
            )
        ]
    assert isinstance(event, SessionEnded)
    return [
        SessionClosedEvent(
            reason=event.reason,
            total_duration_ms=event.total_duration_ms,
            segments_transcribed=event.segments_transcribed,
        )
    ]


def dump(event: BaseModel) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=False)
