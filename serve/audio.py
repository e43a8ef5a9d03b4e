"""Decoding uploaded audio (any container PyAV/FFmpeg reads) to 16 kHz mono float32."""

from __future__ import annotations

import io

import numpy as np

from engines.base import SAMPLE_RATE, Audio
from serve.errors import InvalidAudioError


def decode_audio_bytes(data: bytes) -> Audio:
    """wav (PCM16, float32), flac, mp3, ogg/opus, webm, m4a/mp4... -> 16 kHz mono float32.

    Raises `InvalidAudioError` for empty, undecodable or silent-length (0 samples) input.
    """
    import av

    if not data:
        raise InvalidAudioError("The uploaded file is empty.")
    chunks: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise InvalidAudioError("The uploaded file has no audio stream.")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except InvalidAudioError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, EOFError) as exc:
        raise InvalidAudioError(f"The uploaded file could not be decoded as audio: {exc}") from None
    if not chunks:
        raise InvalidAudioError("The uploaded file contains no audio samples.")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    if audio.size == 0:
        raise InvalidAudioError("The uploaded file contains no audio samples.")
    return np.clip(audio, -1.0, 1.0)
