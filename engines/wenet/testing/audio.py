"""Audio for tests and benchmarks: files via PyAV, and synthetic speech-like bursts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engines.base import SAMPLE_RATE


def load_audio(path: Path) -> npt.NDArray[np.float32]:
    """Any file PyAV reads -> mono float32 at 16 kHz."""
    import av

    chunks: list[npt.NDArray[np.float32]] = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1))
        for out in resampler.resample(None):
            chunks.append(np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def bursts(
    pattern: Sequence[tuple[str, float]], *, amplitude: float = 0.3, seed: int = 0
) -> npt.NDArray[np.float32]:
    """Concatenated ("speech" | "silence", seconds) parts: noise bursts and digital silence."""
    rng = np.random.default_rng(seed)
    parts = []
    for kind, seconds in pattern:
        n = round(seconds * SAMPLE_RATE)
        if kind == "speech":
            parts.append((rng.standard_normal(n) * amplitude).clip(-1, 1).astype(np.float32))
        elif kind == "silence":
            parts.append(np.zeros(n, dtype=np.float32))
        else:
            raise ValueError(f"unknown part {kind!r}")
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
