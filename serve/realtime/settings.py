"""Server-side knobs of realtime sessions: `TheoSettings.realtime`, env `THEO_REALTIME__<FIELD>`
(chart: `settings.realtime`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RealtimeSettings(BaseModel):
    partial_interval_ms: int = Field(default=500, ge=100, le=10_000)
    """Re-decode the open segment after this much new audio (encoder-decoder models)."""
    first_partial_ms: int = Field(default=300, ge=100, le=10_000)
    """Speech before a segment's first partial decode (then every `partial_interval_ms`)."""
    max_concurrent_partials: int = Field(default=8, ge=1)
    """Most partial and speculative-final decodes in one round per gateway replica (finals
    are not limited). Every waiting session gets a turn per round, the round's decodes are
    batched together in the engine, and the next round starts when it is done: under load
    the partial interval of every session stretches evenly. Match the engine's
    `max_batch_size`."""
    tail_padding_ms: int = Field(default=200, ge=0, le=1_000)
    """Silence kept after the end of speech in the audio of a final."""
    ring_buffer_s: float = Field(default=45.0, ge=5.0, le=600.0)
    """Per-session audio kept for finals and replays; its size bounds session memory."""
    max_frame_bytes: int = Field(default=1 << 20, ge=1024)
    """Larger WebSocket messages are refused with an `error` event."""
    rate_limit_factor: float = Field(default=1.2, gt=1.0)
    rate_limit_burst_s: float = Field(default=2.0, ge=0.0)
    ping_interval_s: float = Field(default=15.0, gt=0.0)
    max_prompt_chars: int = Field(default=200, ge=0)
    engine_timeout_s: float = Field(default=30.0, gt=0.0)
    """One engine call."""
    retry_window_s: float = Field(default=30.0, ge=0.0)
    """How long a failing final is retried (on another or a restarted replica)."""
    close_timeout_s: float = Field(default=60.0, gt=0.0)
    """How long a closing session may take to flush its last final."""
