"""Wire audio -> float32 samples. Pure conversions, no state."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engines.base import Audio

PCM16_SCALE = 32768.0


class PcmError(ValueError):
    """Bytes that are not whole samples of the declared encoding."""


def pcm16_to_float(data: bytes) -> Audio:
    """Little-endian signed 16-bit mono PCM -> float32 in [-1, 1); whole samples only."""
    if len(data) % 2:
        raise PcmError(f"PCM16 frames must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(PCM16_SCALE)


def _mulaw_table() -> npt.NDArray[np.float32]:
    """ITU-T G.711 mu-law: byte -> linear sample, as float32."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    linear = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    return (linear / PCM16_SCALE).astype(np.float32)


def _alaw_table() -> npt.NDArray[np.float32]:
    """ITU-T G.711 A-law: byte -> linear sample, as float32."""
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    linear = np.where(sign != 0, magnitude, -magnitude)
    return (linear / PCM16_SCALE).astype(np.float32)


MULAW_TABLE = _mulaw_table()
ALAW_TABLE = _alaw_table()


def mulaw_to_float(data: bytes) -> Audio:
    """G.711 mu-law bytes (one sample per byte) -> float32."""
    return MULAW_TABLE[np.frombuffer(data, dtype=np.uint8)]


def alaw_to_float(data: bytes) -> Audio:
    """G.711 A-law bytes (one sample per byte) -> float32."""
    return ALAW_TABLE[np.frombuffer(data, dtype=np.uint8)]
