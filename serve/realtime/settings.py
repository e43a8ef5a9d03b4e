"""Server-side knobs of realtime sessions: `TheoSettings.realtime`, env `THEO_REALTIME__<FIELD>`
(chart: `settings.realtime`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RealtimeSettings(BaseModel):
    partial_interval_ms: int = Field(default=500, ge=100, le=10_000)
    """Re-decode the open segment after this much new audio (encoder-decoder models)."""
    max_concurrent_partials: int = Field(default=1, ge=1)
    """Partial and speculative-final decodes in flight per gateway replica, all sessions
    together (finals are not limited): under load they thin out instead of delaying finals."""
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
