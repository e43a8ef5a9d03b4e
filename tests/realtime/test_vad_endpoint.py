"""Silero VAD behind the energy pre-filter on real speech, silence and noise; endpointing."""

from __future__ import annotations

import numpy as np

from engines.base import Audio
from serve.realtime.endpoint import (
    Endpointer,
    EndpointEvent,
    PauseEnded,
    PauseStarted,
    SpeechEnded,
    SpeechStarted,
)
from serve.realtime.vad import (
    FRAME_SAMPLES,
    FrameVad,
    VadSensitivity,
    VadThresholds,
    rms_dbfs,
    shared_silero,
    thresholds_for,
)
from tests.realtime.helpers import clip_audio, silence

NORMAL = thresholds_for(VadSensitivity.NORMAL)


def probabilities(vad: FrameVad, audio: Audio) -> list[float]:
    return [
        vad.probability(audio[i : i + FRAME_SAMPLES])
        for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES)
    ]


def endpoint_events(audio: Audio, silence_ms: int = 500) -> list[EndpointEvent]:
    vad = FrameVad(shared_silero(), NORMAL)
    endpointer = Endpointer(NORMAL, silence_ms)
    events: list[EndpointEvent] = []
    for i, p in enumerate(probabilities(vad, audio)):
        events += endpointer.push(p, i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)
    return events


def test_speech_frames_score_high_and_silence_skips_the_model() -> None:
    audio = np.concatenate([silence(1.0), clip_audio("7902-96591-0000.wav"), silence(1.0)])
    vad = FrameVad(shared_silero(), NORMAL)
    probs = probabilities(vad, audio)
    speech = probs[40:80]
    assert np.mean(np.array(speech) >= NORMAL.speech) > 0.8
    assert max(probs[:31]) == 0.0 and max(probs[-20:]) < NORMAL.silence
    assert vad.model_calls < len(probs) - 31, "digital silence must not reach the model"


def test_noise_is_not_speech_at_any_sensitivity() -> None:
    rng = np.random.default_rng(7)
    white = rng.normal(0, 0.1, 16_000 * 5).astype(np.float32)
    brown = (np.cumsum(rng.normal(0, 0.01, 16_000 * 5)) / 30).astype(np.float32)
    hum = (0.3 * np.sin(2 * np.pi * 50 * np.arange(80_000) / 16_000)).astype(np.float32)
    for noise in (white, brown, hum):
        for sensitivity in VadSensitivity:
            thresholds = thresholds_for(sensitivity)
            probs = probabilities(FrameVad(shared_silero(), thresholds), noise)
            assert max(probs) < thresholds.speech, (sensitivity, max(probs))


def test_two_utterances_give_two_speech_spans() -> None:
    first, second = clip_audio("7902-96591-0000.wav"), clip_audio("6930-75918-0000.wav")
    audio = np.concatenate([silence(0.5), first, silence(1.5), second, silence(1.0)])
    events = endpoint_events(audio)
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    ends = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(starts) == 2 and len(ends) == 2
    boundary = 16_000 * (0.5 + len(first) / 16_000)
    assert starts[0].sample < ends[0].sample <= boundary + 8000 < starts[1].sample
    assert all(e.detected_at - e.sample >= 500 * 16 for e in ends)


def test_endpointer_hysteresis_and_timeout() -> None:
    thresholds = VadThresholds(speech=0.5, silence=0.3, energy_floor_dbfs=-60, min_speech_ms=64)
    endpointer = Endpointer(thresholds, silence_timeout_ms=96)
    frames = [0.9, 0.1, 0.9, 0.9, 0.4, 0.2, 0.4, 0.9, 0.1, 0.4, 0.2, 0.1]
    out = []
    for i, p in enumerate(frames):
        out += [(i, e) for e in endpointer.push(p, i * 512, (i + 1) * 512)]
    assert out == [
        (3, SpeechStarted(2 * 512)),  # a lone frame is not speech; two in a row are
        (5, PauseStarted(5 * 512)),  # 0.4 is between the thresholds: no pause yet
        (7, PauseEnded(7 * 512)),
        (8, PauseStarted(8 * 512)),
        (10, SpeechEnded(8 * 512, 11 * 512)),  # 3 frames = 96 ms of pause
    ]
    assert not endpointer.in_speech


def test_sensitivity_orders_thresholds() -> None:
    high, normal, low = (thresholds_for(s) for s in VadSensitivity)
    assert high.speech < normal.speech < low.speech
    assert high.energy_floor_dbfs < normal.energy_floor_dbfs < low.energy_floor_dbfs
    override = thresholds_for(VadSensitivity.NORMAL, 0.7)
    assert override.speech == 0.7 and override.silence < 0.7


def test_rms_dbfs() -> None:
    assert rms_dbfs(np.full(512, 0.5, dtype=np.float32)) == np.float64(20 * np.log10(0.5))
    assert rms_dbfs(np.zeros(512, dtype=np.float32)) == -np.inf
