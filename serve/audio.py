"""Decoding uploaded audio (any container PyAV/FFmpeg reads) to 16 kHz mono float32.

Decoding is bounded by what was decoded, never by what the file claims: frames are resampled
one at a time and decoding stops as soon as the samples reach the duration limit, so a small
file declaring hours of audio (or a 1 Hz sample rate, upsampled x16,000) costs at most the
limit. Sample rates outside 4-384 kHz are refused before decoding. Truncated files follow the
one rule of `serve.truncation`.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from engines.base import SAMPLE_RATE, Audio
from serve.errors import AudioTooLongError, InvalidAudioError, TruncatedAudioError
from serve.truncation import declared_seconds, falls_short, ogg_truncated

MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
"""Plausible audio: 4 kHz (below telephone band) to 384 kHz (studio masters)."""


def _decode_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.FFmpegError, ValueError, IndexError, EOFError, OSError, RuntimeError)


def check_sample_rate(rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidAudioError(
            f"The audio's sample rate of {rate} Hz is outside the supported range "
            f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz."
        )


class _Samples:
    """Resampled chunks, refused as soon as they pass the duration limit."""

    def __init__(self, max_duration_s: float | None) -> None:
        self.max_duration_s = max_duration_s
        self.limit = None if max_duration_s is None else round(max_duration_s * SAMPLE_RATE)
        self.chunks: list[np.ndarray] = []
        self.count = 0

    def add(self, frame: Any) -> None:
        chunk = frame.to_ndarray().reshape(-1)
        self.count += chunk.size
        if self.limit is not None and self.count > self.limit:
            assert self.max_duration_s is not None
            self.chunks.clear()
            raise AudioTooLongError(self.max_duration_s)
        self.chunks.append(chunk)

    @property
    def seconds(self) -> float:
        return self.count / SAMPLE_RATE

    def audio(self) -> Audio:
        audio = np.concatenate(self.chunks).astype(np.float32, copy=False)
        self.chunks.clear()
        return np.clip(audio, -1.0, 1.0, out=audio)


def _audio_stream(container: Any) -> Any:
    if not container.streams.audio:
        raise InvalidAudioError("The uploaded file has no audio stream.")
    stream = container.streams.audio[0]
    check_sample_rate(int(stream.codec_context.sample_rate or 0))
    return stream


def _seconds(value: Any, unit: Any) -> float | None:
    return None if value is None else float(value * unit)


def _declared(data: bytes, container: Any, stream: Any) -> float | None:
    return declared_seconds(
        data,
        container.format.name,
        _seconds(stream.duration, stream.time_base),
        _seconds(container.duration, 1e-6),
        audio_only=len(container.streams.audio) == len(container.streams),
    )


def _decode(container: Any, stream: Any, samples: _Samples) -> bool:
    """Decode and resample frame by frame; True when decoding broke off after the start."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    try:
        for frame in container.decode(stream):
            check_sample_rate(int(frame.sample_rate or 0))
            for out in resampler.resample(frame):
                samples.add(out)
    except _decode_errors():
        if samples.count == 0:
            raise
        return True
    for out in resampler.resample(None):
        samples.add(out)
    return False


def decode_audio_bytes(data: bytes, *, max_duration_s: float | None = None) -> Audio:
    """wav (PCM, float), flac, mp3, ogg/opus, webm, m4a/mp4... -> 16 kHz mono float32.

    Raises `InvalidAudioError` for empty or undecodable input and implausible sample rates,
    `TruncatedAudioError` for audio that ends before its header says (or breaks off), and
    `AudioTooLongError` as soon as the decoded audio passes `max_duration_s`.
    """
    import av

    if not data:
        raise InvalidAudioError("The uploaded file is empty.")
    samples = _Samples(max_duration_s)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = _audio_stream(container)
            if container.format.name == "ogg" and ogg_truncated(data):
                raise TruncatedAudioError("The Ogg file is truncated: its last page is incomplete.")
            declared = _declared(data, container, stream)
            broke_off = _decode(container, stream, samples)
    except (InvalidAudioError, AudioTooLongError):
        raise
    except _decode_errors() as exc:
        raise InvalidAudioError(f"The uploaded file could not be decoded as audio: {exc}") from None
    if samples.count == 0:
        raise InvalidAudioError("The uploaded file contains no audio samples.")
    if broke_off:
        raise TruncatedAudioError(
            f"The audio breaks off after {samples.seconds:.1f} s: the file is truncated or damaged."
        )
    if declared is not None and falls_short(declared, samples.seconds):
        raise TruncatedAudioError(
            f"The file declares {declared:.1f} s of audio but ends after {samples.seconds:.1f} s:"
            " it is truncated."
        )
    return samples.audio()
