"""Chunk scheduling of WeNet's streaming encoder.

The encoder's conv subsampling needs `right_context` frames beyond the last frame it
outputs, so the first chunk takes `(chunk - 1) * rate + right_context + 1` frames for `chunk`
outputs; each later chunk takes `chunk * rate` new frames and reuses the last
`right_context + 1 - rate` frames of the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.wenet.features import Features


@dataclass(frozen=True)
class ChunkSchedule:
    chunk_size: int
    """Encoder output frames per chunk; -1: everything at once (full attention)."""
    subsampling_rate: int
    right_context: int
    num_left_chunks: int = -1

    @property
    def streaming(self) -> bool:
        return self.chunk_size > 0

    @property
    def carried_frames(self) -> int:
        return max(0, self.right_context + 1 - self.subsampling_rate)

    @property
    def min_frames(self) -> int:
        """Fewest input frames (carried + new) that yield one output frame."""
        return self.right_context + 1

    def frames_needed(self, started: bool) -> int | None:
        """New frames the next chunk consumes; None: all there is (non-streaming)."""
        if not self.streaming:
            return None
        if not started:
            return (self.chunk_size - 1) * self.subsampling_rate + self.right_context + 1
        return self.chunk_size * self.subsampling_rate

    def required_cache_size(self) -> int:
        """`forward_encoder_chunk`'s cache size: < 0 keeps all history, 0 keeps none."""
        if not self.streaming:
            return 0
        if self.num_left_chunks < 0:
            return -1
        return self.chunk_size * self.num_left_chunks

    def output_frames(self, input_frames: int) -> int:
        """Encoder output frames for `input_frames` frames (carried ones included)."""
        if input_frames < self.min_frames:
            return 0
        return (input_frames - self.min_frames) // self.subsampling_rate + 1


class FeatureQueue:
    """Frames waiting for the encoder, plus the frames carried into the next chunk."""

    def __init__(self, schedule: ChunkSchedule, num_mel_bins: int) -> None:
        self.schedule = schedule
        self._empty = np.zeros((0, num_mel_bins), dtype=np.float32)
        self._queued = self._empty
        self._carried = self._empty
        self.started = False
        self.consumed = 0
        """New frames handed to the encoder since the last reset of the global count."""

    def push(self, frames: Features) -> None:
        if frames.shape[0]:
            self._queued = np.concatenate([self._queued, frames])

    @property
    def queued(self) -> int:
        return int(self._queued.shape[0])

    def next_chunk(self, input_finished: bool) -> Features | None:
        """The encoder input of the next chunk (carried + new), or None to wait for audio.

        At the end of input the tail is released even if shorter than a chunk.
        """
        need = self.schedule.frames_needed(self.started)
        if need is None:
            if not input_finished or self.queued == 0:
                return None
            take = self.queued
        elif self.queued >= need:
            take = need
        elif input_finished and self.queued > 0:
            take = self.queued
        else:
            return None
        new = self._queued[:take]
        self._queued = self._queued[take:]
        self.consumed += take
        chunk = np.concatenate([self._carried, new]) if self._carried.shape[0] else new
        carry = self.schedule.carried_frames
        if new.shape[0] >= carry:
            self._carried = new[new.shape[0] - carry :] if carry else self._empty
        self.started = True
        return chunk

    def restart(self) -> None:
        """New segment: the encoder restarts cold, so nothing is carried (WeNet's reset)."""
        self._carried = self._empty
        self.started = False
