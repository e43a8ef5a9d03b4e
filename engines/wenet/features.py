"""Kaldi fbank as WeNet trains on it: 80 bins, 25 ms / 10 ms, 16 kHz, no dither, samples in
int16 range. Incremental: audio in, newly completed frames out."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from engines.base import SAMPLE_RATE

NUM_MEL_BINS = 80
FRAME_SHIFT_MS = 10
FRAME_LENGTH_MS = 25
INT16_SCALE = 32768.0

Features = npt.NDArray[np.float32]


def fbank_options(num_mel_bins: int = NUM_MEL_BINS) -> Any:
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.dither = 0.0
    opts.frame_opts.frame_shift_ms = FRAME_SHIFT_MS
    opts.frame_opts.frame_length_ms = FRAME_LENGTH_MS
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = num_mel_bins
    opts.energy_floor = 0.0
    return opts


class FbankExtractor:
    """One per stream; not thread-safe."""

    def __init__(self, num_mel_bins: int = NUM_MEL_BINS) -> None:
        import kaldi_native_fbank as knf

        self.num_mel_bins = num_mel_bins
        self._fbank = knf.OnlineFbank(fbank_options(num_mel_bins))
        self._next = 0
        self._samples = 0
        self.finished = False

    def accept(self, audio: npt.NDArray[np.float32]) -> None:
        """`audio`: float32 mono in [-1, 1] at 16 kHz."""
        if self.finished:
            raise RuntimeError("audio after end of input")
        if audio.size:
            scaled = np.ascontiguousarray(audio, dtype=np.float32) * np.float32(INT16_SCALE)
            self._fbank.accept_waveform(SAMPLE_RATE, scaled)
            self._samples += int(audio.size)

    def samples_until(self, frames: int) -> int:
        """Audio still to accept before `frames` more frames than those popped are complete
        (frames of 25 ms every 10 ms, edges snipped)."""
        last = self._next + frames - 1
        total = FRAME_LENGTH_MS * SAMPLE_RATE // 1000 + last * FRAME_SHIFT_MS * SAMPLE_RATE // 1000
        return max(1, total - self._samples)

    def finish(self) -> None:
        if not self.finished:
            self._fbank.input_finished()
            self.finished = True

    def pop_frames(self) -> Features:
        """Frames completed since the last call, [n, num_mel_bins]."""
        ready = int(self._fbank.num_frames_ready)
        if ready <= self._next:
            return np.zeros((0, self.num_mel_bins), dtype=np.float32)
        frames = np.stack([self._fbank.get_frame(i) for i in range(self._next, ready)])
        self._fbank.pop(ready - self._next)
        self._next = ready
        return frames.astype(np.float32, copy=False)


def fbank(audio: npt.NDArray[np.float32], num_mel_bins: int = NUM_MEL_BINS) -> Features:
    """Whole-utterance features."""
    extractor = FbankExtractor(num_mel_bins)
    extractor.accept(audio)
    extractor.finish()
    return extractor.pop_frames()
