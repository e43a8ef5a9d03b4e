"""Client pacing: advice when audio arrives faster than real time, and dropped-audio reports.

Pure given a clock value: callers pass `now` (seconds, monotonic).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RateAdvice:
    delay_ms: int
    ratio: float


class RateMeter:
    """Audio seconds received vs wall seconds since the first frame.

    A client more than `burst_s` of audio ahead of `factor` x real time is told to wait
    `delay_ms` (the time until it would be back within the limit), at most once per
    `advice_interval_s`.
    """

    def __init__(self, factor: float, burst_s: float, advice_interval_s: float = 1.0) -> None:
        self.factor = factor
        self.burst_s = burst_s
        self.advice_interval_s = advice_interval_s
        self.audio_s = 0.0
        self._started: float | None = None
        self._last_advice = -float("inf")

    def observe(self, audio_s: float, now: float) -> RateAdvice | None:
        if self._started is None:
            self._started = now
        self.audio_s += audio_s
        elapsed = now - self._started
        allowed = self.factor * elapsed + self.burst_s
        if self.audio_s <= allowed or now - self._last_advice < self.advice_interval_s:
            return None
        self._last_advice = now
        delay_s = (self.audio_s - self.burst_s) / self.factor - elapsed
        ratio = self.audio_s / elapsed if elapsed > 0 else float("inf")
        return RateAdvice(delay_ms=max(1, round(delay_s * 1000)), ratio=ratio)


class DropReport:
    """Accumulates dropped audio; reports it at most once per `interval_s`."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.total_ms = 0.0
        self._pending_ms = 0.0
        self._last = -float("inf")

    def add(self, dropped_ms: float, now: float) -> int | None:
        self.total_ms += dropped_ms
        self._pending_ms += dropped_ms
        return self.take(now)

    def take(self, now: float, *, force: bool = False) -> int | None:
        if self._pending_ms <= 0 or (not force and now - self._last < self.interval_s):
            return None
        reported, self._pending_ms, self._last = round(self._pending_ms), 0.0, now
        return max(reported, 1)
