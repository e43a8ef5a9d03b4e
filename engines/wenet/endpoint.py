"""CTC endpointing (WeNet's rules): a frame is silence when blank dominates it; an endpoint
fires when any rule's trailing-silence and utterance-length minimums are both met."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from engines.wenet.config import EndpointRule


def rule_fires(
    rule: EndpointRule, *, decoded_something: bool, trailing_silence_ms: int, length_ms: int
) -> bool:
    return (
        (decoded_something or not rule.must_decode_something)
        and trailing_silence_ms >= rule.min_trailing_silence_ms
        and length_ms >= rule.min_utterance_length_ms
    )


class EndpointDetector:
    def __init__(
        self,
        rules: Sequence[EndpointRule],
        *,
        frame_ms: int,
        blank: int = 0,
        blank_threshold: float = 0.8,
    ) -> None:
        if frame_ms <= 0:
            raise ValueError("frame_ms must be positive")
        self.rules = list(rules)
        self.frame_ms = frame_ms
        self.blank = blank
        self.log_threshold = math.log(blank_threshold)
        self.reset()

    def reset(self) -> None:
        self.frames = 0
        self.trailing_blank_frames = 0

    @property
    def length_ms(self) -> int:
        return self.frames * self.frame_ms

    @property
    def trailing_silence_ms(self) -> int:
        return self.trailing_blank_frames * self.frame_ms

    def update(self, logp: npt.NDArray[np.float32]) -> None:
        """Count the frames of a chunk's log-posteriors [frames, vocab]."""
        if logp.shape[0] == 0:
            return
        silent = logp[:, self.blank] > self.log_threshold
        self.frames += int(silent.shape[0])
        speech = np.flatnonzero(~silent)
        if speech.size:
            self.trailing_blank_frames = int(silent.shape[0] - 1 - speech[-1])
        else:
            self.trailing_blank_frames += int(silent.shape[0])

    def is_endpoint(self, decoded_something: bool) -> bool:
        return any(
            rule_fires(
                rule,
                decoded_something=decoded_something,
                trailing_silence_ms=self.trailing_silence_ms,
                length_ms=self.length_ms,
            )
            for rule in self.rules
        )
