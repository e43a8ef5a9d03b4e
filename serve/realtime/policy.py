"""Partial policies: how an engine's output becomes partials and finals in a session.

`serve.realtime.model.choose_policy` picks one per session from what the model's engine and
manifest declare (`engines.spec.streams_natively`): native partials from the engine's own
streaming state (`native_partials.NativePartialPolicy`), or re-decoding the open segment and
confirming words with LocalAgreement-2 (`redecode.LocalAgreementPolicy`).
"""

from __future__ import annotations

import abc

from engines.base import Audio, TranscribeOptions, TranscriptionResult
from serve.realtime.events import FinalTranscript


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
    async def partial(self, audio: Audio, options: TranscribeOptions) -> str | None:
        """The open segment so far; returns the new partial text, or None if unchanged.
        `options`: the session's language, prompt and hot words for this decode."""

    def observe(self, result: TranscriptionResult) -> str | None:
        """A whole-segment decode made for another reason (a speculative final) may also
        advance the partials; returns the new partial text, or None."""
        return None

    @abc.abstractmethod
    async def decode_final(self, audio: Audio, options: TranscribeOptions) -> TranscriptionResult:
        """One decode of the closed segment's audio (may raise; the caller retries)."""

    @abc.abstractmethod
    def finish(self, result: TranscriptionResult, offset_ms: int) -> FinalTranscript | None:
        """The final of the segment from its decode; None when it held no speech."""
