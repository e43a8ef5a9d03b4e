"""Wire audio conversions against reference implementations and real speech."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cli.realtime_client import float_to_pcm16
from serve.realtime.pcm import PcmError, alaw_to_float, mulaw_to_float, pcm16_to_float
from serve.realtime.resample import StreamResampler
from tests.realtime.helpers import clip_audio

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def test_pcm16_round_trip_and_scale() -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 12345], dtype="<i2")
    audio = pcm16_to_float(samples.tobytes())
    assert audio.dtype == np.float32
    assert audio[3] == pytest.approx(32767 / 32768) and audio[4] == -1.0
    assert float_to_pcm16(audio) == samples.tobytes()


def test_odd_length_pcm16_is_refused() -> None:
    with pytest.raises(PcmError, match="even number of bytes"):
        pcm16_to_float(b"\x00\x01\x02")


@pytest.mark.parametrize(
    ("decode", "reference"), [(mulaw_to_float, audioop.ulaw2lin), (alaw_to_float, audioop.alaw2lin)]
)
def test_g711_tables_match_the_reference_codec(decode, reference) -> None:  # type: ignore[no-untyped-def]
    every_byte = bytes(range(256))
    expected = np.frombuffer(reference(every_byte, 2), dtype="<i2") / 32768
    np.testing.assert_array_equal(decode(every_byte), expected.astype(np.float32))


def test_g711_round_trip_of_speech_keeps_the_signal() -> None:
    speech = clip_audio("7902-96591-0000.wav")
    pcm = float_to_pcm16(speech)
    for encode, decode in ((audioop.lin2ulaw, mulaw_to_float), (audioop.lin2alaw, alaw_to_float)):
        decoded = decode(encode(pcm, 2))
        snr = 10 * np.log10(np.sum(speech**2) / np.sum((speech - decoded) ** 2))
        assert snr > 25, snr


@pytest.mark.parametrize("rate", [8000, 24000, 48000])
def test_streaming_resampler_keeps_a_tone_in_odd_chunks(rate: int) -> None:
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    resampler = StreamResampler(rate)
    chunks = [resampler.process(tone[i : i + 333]) for i in range(0, len(tone), 333)]
    out = np.concatenate([*chunks, resampler.flush()])
    assert abs(len(out) - 16_000) <= 2
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(out)) / 16_000)
    assert np.max(np.abs(out[200:-200] - expected[200:-200])) < 1e-3


def test_16k_passes_through_untouched() -> None:
    audio = clip_audio("7902-96591-0000.wav")
    assert StreamResampler(16_000).process(audio) is audio
