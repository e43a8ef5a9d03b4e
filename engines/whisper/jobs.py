"""What moves between the stages of the Whisper engine: a window to decode, its result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engines.base import SegmentResult, TranscribeOptions


@dataclass
class WindowJob:
    """One <= 30 s window of one request, ready for the batch decoder."""

    offset: float
    duration: float
    features: npt.NDArray[np.float32]
    options: TranscribeOptions
    previous: tuple[int, ...] = ()
    """Previous-text tokens of the prompt (`engines.whisper.context`)."""


@dataclass
class WindowOutput:
    language: str
    language_probability: float
    segments: list[SegmentResult]
    batch_size: int
