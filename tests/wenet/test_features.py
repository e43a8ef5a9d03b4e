from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np

from engines.wenet.features import FbankExtractor, fbank


def test_incremental_features_equal_whole_utterance_features() -> None:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(16000) * 0.1).astype(np.float32)
    whole = fbank(audio)
    assert whole.shape == (98, 80)  # snip_edges: 1 + (16000 - 400) // 160
    extractor = FbankExtractor()
    parts = []
    for start in range(0, len(audio), 777):
        extractor.accept(audio[start : start + 777])
        parts.append(extractor.pop_frames())
    extractor.finish()
    parts.append(extractor.pop_frames())
    assert np.allclose(np.concatenate(parts), whole, atol=1e-5)


def test_samples_are_scaled_to_int16_and_not_dithered() -> None:
    audio = (np.sin(np.arange(8000) * 0.05) * 0.5).astype(np.float32)
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 80
    reference = knf.OnlineFbank(opts)
    reference.accept_waveform(16000, audio * 32768.0)
    expected = np.stack([reference.get_frame(i) for i in range(reference.num_frames_ready)])
    assert np.allclose(fbank(audio), expected, atol=1e-4)
    assert np.array_equal(fbank(audio), fbank(audio))
