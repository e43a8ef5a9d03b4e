"""What a session tells its client, independent of the wire protocol.

`native.py` and `openai_protocol.py` render these into their own events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engines.base import WordTiming

CloseReason = Literal["client_request", "cancelled", "inactivity_timeout", "client_disconnect"]


@dataclass(frozen=True)
class FinalTranscript:
    text: str
    start_ms: int
    end_ms: int
    language: str
    confidence: float
    words: tuple[WordTiming, ...] = ()
    audio_ms: int = 0
    """Duration of the audio this final was decoded from."""


@dataclass(frozen=True)
class SpeechStarted:
    timestamp_ms: int
    """Where speech was detected."""
    audio_start_ms: int
    """Where the utterance's audio starts (the detected start less the prefix padding)."""


@dataclass(frozen=True)
class PartialTranscript:
    segment_id: int
    stable: str
    """The words confirmed so far in this segment: they only grow, and the final starts with
    them."""
    unstable: str
    """The rest of the newest hypothesis: replaced by the next partial, may vanish."""
    timestamp_ms: int
    """End of the audio this partial was decoded from."""

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.stable, self.unstable) if part)


@dataclass(frozen=True)
class SegmentClosed:
    """The open segment was closed (its final follows): sent when it happens, not after the
    decode."""

    speech_end_ms: int | None
    """Where speech end was detected, when the VAD closed the segment (not a commit, a split
    or an early commit)."""
    audio_end_ms: int


@dataclass(frozen=True)
class SegmentDone:
    """A segment's final (None when it held no speech after all)."""

    segment_id: int
    final: FinalTranscript | None
    audio_end_ms: int


@dataclass(frozen=True)
class SegmentFailed:
    segment_id: int
    message: str
    audio_end_ms: int


@dataclass(frozen=True)
class SessionHeld:
    timestamp_ms: int
    hold_timeout_ms: int


@dataclass(frozen=True)
class RateLimited:
    delay_ms: int
    ratio: float


@dataclass(frozen=True)
class FramesDropped:
    dropped_ms: int


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    recoverable: bool = True
    param: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class SessionEnded:
    reason: CloseReason
    total_duration_ms: int
    segments_transcribed: int


SessionEvent = (
    SpeechStarted
    | PartialTranscript
    | SegmentClosed
    | SegmentDone
    | SegmentFailed
    | SessionHeld
    | RateLimited
    | FramesDropped
    | Problem
    | SessionEnded
)
