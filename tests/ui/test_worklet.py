"""The page's AudioWorklet (`/ui/pcm-worklet.js`) in real Chromium, rendered offline: at the
rates the server takes it passes samples through as PCM16; at 44.1 kHz (common in browsers) it
resamples to 16 kHz with a low-pass filter, so tones keep their pitch and content above the
new Nyquist frequency does not fold back into the speech band."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# Renders one second of a sine through the worklet and returns what it posted.
RENDER = """async ([rate, frequency]) => {
  const context = new OfflineAudioContext(1, rate, rate);
  await context.audioWorklet.addModule("/ui/pcm-worklet.js");
  const node = new AudioWorkletNode(context, "pcm16-sender", {
    numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit",
  });
  const posted = { rate: null, samples: [] };
  node.port.onmessage = (message) => {
    if (message.data.type === "rate") posted.rate = message.data.rate;
    else posted.samples.push(...new Int16Array(message.data.pcm));
  };
  const tone = new OscillatorNode(context, { frequency });
  const gain = new GainNode(context, { gain: 0.5 });
  tone.connect(gain).connect(node);
  tone.start();
  await context.startRendering();
  await new Promise((resolve) => setTimeout(resolve, 300));
  return posted;
}"""


def render(page: Any, rate: int, frequency: float) -> tuple[int, np.ndarray]:
    posted = page.evaluate(RENDER, [rate, frequency])
    return int(posted["rate"]), np.asarray(posted["samples"], dtype=np.float64) / 32768.0


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples[len(samples) // 10 :] ** 2)))


def test_server_rates_pass_through_as_pcm16(page: Any) -> None:
    page.goto("/")
    rate, samples = render(page, 48_000, 1_000)
    assert rate == 48_000
    assert len(samples) == 48_000, "ten whole 100 ms chunks"
    assert peak_hz(samples, rate) == pytest.approx(1_000, abs=2)
    assert rms(samples) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_44k1_is_low_passed_and_resampled_to_16k(page: Any) -> None:
    page.goto("/")
    rate, speech_band = render(page, 44_100, 1_000)
    assert rate == 16_000
    assert abs(len(speech_band) - 16_000) <= 1_600, "one second in, about one second out"
    assert peak_hz(speech_band, rate) == pytest.approx(1_000, abs=3)
    assert rms(speech_band) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    _, above_nyquist = render(page, 44_100, 11_000)  # would fold back to 5 kHz
    assert rms(above_nyquist) < rms(speech_band) / 100, "at least 40 dB down"
