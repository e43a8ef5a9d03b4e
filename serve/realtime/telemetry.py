"""Metrics and spans of one realtime session, derived from the events it emits.

The connection tells it when audio arrives (so latencies are measured from the arrival of the
audio an event refers to), hands it every `SessionEvent`, and reports open/close. Nothing here
changes what the session does.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from contextvars import ContextVar, Token

from opentelemetry import trace
from opentelemetry.context import Context

from serve.realtime.events import (
    FramesDropped,
    PartialTranscript,
    RateLimited,
    SegmentDone,
    SegmentFailed,
    SessionEnded,
    SessionEvent,
    SpeechStarted,
)
from serve.telemetry.logs import SESSION_ID
from serve.telemetry.metrics import GatewayMetrics
from serve.telemetry.tracing import current_context, timed_span

SAMPLE_RATE = 16_000
ARRIVALS_KEPT = 4096
"""Audio messages remembered for latency lookups (minutes of audio at 100 ms a message)."""

CURRENT: ContextVar[SessionTelemetry | None] = ContextVar("theo_realtime_session", default=None)


def record_recovery() -> None:
    """An engine call of the current session succeeded after failed attempts."""
    telemetry = CURRENT.get()
    if telemetry is not None:
        telemetry.recovered("engine_retry")


class SessionTelemetry:
    def __init__(self, metrics: GatewayMetrics, model: str, engine: str) -> None:
        self.metrics = metrics
        self.realtime = metrics.realtime
        self.model = model
        self.engine = engine
        self._arrivals_ms: deque[int] = deque(maxlen=ARRIVALS_KEPT)
        self._arrivals_at: deque[float] = deque(maxlen=ARRIVALS_KEPT)
        self._partials_seen: set[int] = set()
        self._speech_started_ns: deque[int] = deque(maxlen=64)
        """Speech starts whose utterance has no final yet (the next one may start first)."""
        self._speech_start_ms: int | None = None
        self._failed_before = False
        self._context: Context | None = None
        self._tokens: tuple[Token[str | None], Token[SessionTelemetry | None]] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def opened(self, session_id: str) -> None:
        """Call in the connection's task before it starts the session's tasks (they inherit
        the session id and this object through their context)."""
        span = trace.get_current_span()
        span.set_attribute("theo.session_id", session_id)
        span.set_attribute("theo.model", self.model)
        self._context = current_context()
        self._tokens = (SESSION_ID.set(session_id), CURRENT.set(self))
        self.realtime.sessions_active.labels(self.model).inc()

    def closed(self) -> None:
        self.realtime.sessions_active.labels(self.model).dec()
        if self._tokens is not None:
            session_token, current_token = self._tokens
            CURRENT.reset(current_token)
            SESSION_ID.reset(session_token)
            self._tokens = None

    # -- audio -------------------------------------------------------------------------------
    def audio_received(self, position_samples: int) -> None:
        """The session's audio now reaches `position_samples` (16 kHz), as of this moment."""
        self._arrivals_ms.append(position_samples * 1000 // SAMPLE_RATE)
        self._arrivals_at.append(time.monotonic())

    def _arrived_at(self, audio_ms: int) -> float | None:
        """When the message holding audio time `audio_ms` arrived."""
        if not self._arrivals_ms:
            return None
        index = bisect_left(self._arrivals_ms, audio_ms)
        return self._arrivals_at[min(index, len(self._arrivals_at) - 1)]

    def _since_arrival(self, audio_ms: int) -> float | None:
        arrived = self._arrived_at(audio_ms)
        return None if arrived is None else max(0.0, time.monotonic() - arrived)

    # -- events ------------------------------------------------------------------------------
    def observe(self, event: SessionEvent) -> None:
        rt = self.realtime
        if isinstance(event, SpeechStarted):
            rt.speech_segments.labels(self.model).inc()
            self._speech_started_ns.append(time.time_ns())
            self._speech_start_ms = event.timestamp_ms
        elif isinstance(event, PartialTranscript):
            if event.segment_id not in self._partials_seen:
                self._partials_seen.add(event.segment_id)
                start_ms = self._speech_start_ms
                latency = self._since_arrival(event.timestamp_ms if start_ms is None else start_ms)
                if latency is not None:
                    rt.first_partial_latency.labels(self.model).observe(latency)
        elif isinstance(event, SegmentDone):
            if event.final is not None:
                latency = self._since_arrival(event.final.end_ms)
                if latency is not None:
                    rt.final_latency.labels(self.model).observe(latency)
                if self._failed_before:
                    self.recovered("failed_segment")
                    self._failed_before = False
            self._end_speech_span(event.audio_end_ms, failed=False)
        elif isinstance(event, SegmentFailed):
            rt.segment_failures.labels(self.model).inc()
            self._failed_before = True
            self._end_speech_span(event.audio_end_ms, failed=True)
        elif isinstance(event, RateLimited):
            self.metrics.rate_limited.labels(self.model, "realtime").inc()
        elif isinstance(event, FramesDropped):
            rt.dropped_audio.labels(self.model).inc(event.dropped_ms / 1000)
        elif isinstance(event, SessionEnded):
            rt.sessions.labels(self.model, event.reason).inc()
            self.metrics.audio_seconds.labels(self.model, self.engine).inc(
                event.total_duration_ms / 1000
            )

    def recovered(self, kind: str) -> None:
        self.realtime.recoveries.labels(self.model, kind).inc()

    def _end_speech_span(self, audio_end_ms: int, *, failed: bool) -> None:
        """One `vad.speech` span per utterance in the session's trace: from speech detected
        to its final (or failure)."""
        if not self._speech_started_ns or self._context is None:
            return
        timed_span(
            "vad.speech",
            self._context,
            self._speech_started_ns.popleft(),
            time.time_ns(),
            **{"theo.audio_end_ms": audio_end_ms, "theo.failed": failed},
        )
