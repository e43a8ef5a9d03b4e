"""Speech start / end from per-frame probabilities (hysteresis). Pure, no audio, no model.

Speech starts after `min_speech_ms` of frames at or above the speech threshold (a weaker frame
in between resets the count). During speech, a frame below the silence threshold opens a
pause; a frame at or above the speech threshold closes it; the pause becoming
`silence_timeout_ms` long ends speech. Positions are absolute sample indices of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from serve.realtime.vad import VadThresholds


@dataclass(frozen=True)
class SpeechStarted:
    sample: int
    """First sample of the first speech frame."""


@dataclass(frozen=True)
class PauseStarted:
    sample: int
    """First sample of the pause: where speech audio ended, if the pause lasts."""


@dataclass(frozen=True)
class PauseEnded:
    sample: int


@dataclass(frozen=True)
class SpeechEnded:
    sample: int
    """Where speech audio ended (the pause's start)."""
    detected_at: int
    """Where the pause reached the silence timeout."""


EndpointEvent = SpeechStarted | PauseStarted | PauseEnded | SpeechEnded


class Endpointer:
    def __init__(
        self, thresholds: VadThresholds, silence_timeout_ms: int, sample_rate: int = 16_000
    ) -> None:
        self.thresholds = thresholds
        self.min_speech = thresholds.min_speech_ms * sample_rate // 1000
        self.silence_timeout = silence_timeout_ms * sample_rate // 1000
        self.in_speech = False
        self.pause_start: int | None = None
        self._onset: int | None = None

    def push(self, probability: float, start: int, end: int) -> list[EndpointEvent]:
        """One frame covering samples [start, end)."""
        t = self.thresholds
        if not self.in_speech:
            if probability >= t.speech:
                self._onset = start if self._onset is None else self._onset
                if end - self._onset >= self.min_speech:
                    self.in_speech, onset, self._onset = True, self._onset, None
                    return [SpeechStarted(onset)]
            else:
                self._onset = None
            return []
        if self.pause_start is None:
            if probability < t.silence:
                self.pause_start = start
                return [PauseStarted(start), *self._check_timeout(end)]
            return []
        if probability >= t.speech:
            self.pause_start = None
            return [PauseEnded(start)]
        return self._check_timeout(end)

    def _check_timeout(self, end: int) -> list[EndpointEvent]:
        assert self.pause_start is not None
        if end - self.pause_start < self.silence_timeout:
            return []
        ended = SpeechEnded(self.pause_start, end)
        self.in_speech, self.pause_start = False, None
        return [ended]

    def reset(self) -> None:
        self.in_speech, self.pause_start, self._onset = False, None, None
