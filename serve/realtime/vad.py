"""Frame-level voice activity: an energy pre-filter in front of silero-vad (ONNX).

Silero v6 weights in faster-whisper's ONNX export, shipped with this package
(`serve/realtime/assets/silero_vad_v6.onnx`, see the NOTICE beside it) so that the gateway needs
no engine library. onnxruntime runs them one 32 ms frame at a time with the LSTM state carried
per stream. Runs of frames below the energy floor skip the model (probability 0), which is most
of a quiet stream.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.base import Audio

FRAME_SAMPLES = 512
"""Silero's frame at 16 kHz: 32 ms."""
CONTEXT_SAMPLES = 64
QUIET_FRAMES_TO_SKIP = 8
"""Consecutive frames under the energy floor after which the model is skipped (and its state
reset, as at the start of a stream): single quiet frames inside speech still go through it,
because skipping them would break the LSTM's continuity."""
STATE_SHAPE = (1, 1, 128)


class VadSensitivity(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


@dataclass(frozen=True)
class VadThresholds:
    speech: float
    """Probability at or above which a frame is speech."""
    silence: float
    """Probability below which a frame counts towards the end of speech (hysteresis)."""
    energy_floor_dbfs: float
    """Frames quieter than this (RMS) are silence without asking the model."""
    min_speech_ms: int
    """Speech must last this long before `speech_start`."""


SENSITIVITY: dict[VadSensitivity, VadThresholds] = {
    VadSensitivity.HIGH: VadThresholds(0.35, 0.2, -65.0, 32),
    VadSensitivity.NORMAL: VadThresholds(0.5, 0.35, -60.0, 64),
    VadSensitivity.LOW: VadThresholds(0.65, 0.5, -50.0, 128),
}


def thresholds_for(sensitivity: VadSensitivity, threshold: float | None = None) -> VadThresholds:
    """Preset thresholds; an explicit speech `threshold` (OpenAI `server_vad`) overrides them."""
    preset = SENSITIVITY[sensitivity]
    if threshold is None:
        return preset
    return VadThresholds(
        speech=threshold,
        silence=max(threshold - 0.15, 0.01),
        energy_floor_dbfs=preset.energy_floor_dbfs,
        min_speech_ms=preset.min_speech_ms,
    )


def rms_dbfs(frame: Audio) -> float:
    """Root-mean-square level of a frame in dB relative to full scale."""
    if not len(frame):
        return -math.inf
    power = float(np.mean(np.square(frame, dtype=np.float64)))
    return 10.0 * math.log10(power) if power > 0 else -math.inf


SILERO_SHA256 = "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2"


def silero_model_path() -> Path:
    return Path(__file__).resolve().parent / "assets" / "silero_vad_v6.onnx"


class SileroModel:
    """One ONNX session shared by every stream of the process (streams hold their own state)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        self._session: Any = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"], sess_options=options
        )

    def run(
        self,
        frames: npt.NDArray[np.float32],
        h: npt.NDArray[np.float32],
        c: npt.NDArray[np.float32],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """`frames` is (n, CONTEXT + FRAME); returns per-frame probabilities and the new state."""
        probs, h, c = self._session.run(None, {"input": frames, "h": h, "c": c})
        return probs, h, c


@functools.lru_cache(maxsize=1)
def shared_silero() -> SileroModel:
    return SileroModel(silero_model_path())


class FrameVad:
    """Speech probability of consecutive 512-sample frames of one stream."""

    def __init__(self, model: SileroModel, thresholds: VadThresholds) -> None:
        self.model = model
        self.thresholds = thresholds
        self.model_calls = 0
        self.reset()

    def reset(self) -> None:
        self._reset_state()
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._quiet_frames = QUIET_FRAMES_TO_SKIP

    def _reset_state(self) -> None:
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)

    def probability(self, frame: Audio) -> float:
        if len(frame) != FRAME_SAMPLES:
            raise ValueError(f"VAD frames are {FRAME_SAMPLES} samples, got {len(frame)}")
        context, self._context = self._context, frame[-CONTEXT_SAMPLES:].copy()
        if rms_dbfs(frame) < self.thresholds.energy_floor_dbfs:
            self._quiet_frames += 1
            if self._quiet_frames >= QUIET_FRAMES_TO_SKIP:
                if self._quiet_frames == QUIET_FRAMES_TO_SKIP:
                    self._reset_state()
                return 0.0
        else:
            self._quiet_frames = 0
        self.model_calls += 1
        window = np.concatenate([context, frame]).astype(np.float32, copy=False)[None, :]
        probs, self._h, self._c = self.model.run(window, self._h, self._c)
        return float(probs.reshape(-1)[0])
