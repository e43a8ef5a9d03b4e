"""Streaming resampling of mono float32 audio to the engines' 16 kHz (libswresample via PyAV).

Stateful across chunks so chunk boundaries leave no clicks or gaps; PyAV is imported lazily.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engines.base import SAMPLE_RATE, Audio

SUPPORTED_RATES = (8000, 16000, 24000, 48000)
EMPTY: Audio = np.zeros(0, dtype=np.float32)


class StreamResampler:
    def __init__(self, rate: int, target: int = SAMPLE_RATE) -> None:
        if rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        self.rate = rate
        self.target = target
        self._pts = 0
        self._resampler: Any = None
        if rate != target:
            import av

            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=target)

    def process(self, audio: Audio) -> Audio:
        """Resample one chunk; output may lag the input by a few samples (filter delay)."""
        if self._resampler is None or not len(audio):
            return audio if self._resampler is None else EMPTY
        import av

        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio, dtype=np.float32)[None, :], format="flt", layout="mono"
        )
        frame.sample_rate = self.rate
        frame.pts = self._pts
        self._pts += len(audio)
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> Audio:
        """The samples still held by the filter at the end of the stream."""
        if self._resampler is None:
            return EMPTY
        return self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames: list[Any]) -> Audio:
        if not frames:
            return EMPTY
        return np.concatenate([f.to_ndarray()[0] for f in frames]).astype(np.float32, copy=False)
