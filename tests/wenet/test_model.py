"""The TorchScript loader against a generated export: interface, chunk shapes, caches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from engines.base import TranscribeOptions
from engines.wenet.chunking import ChunkSchedule, FeatureQueue
from engines.wenet.model import EncoderState
from engines.wenet.testing.audio import bursts
from engines.wenet.testing.generate import GeneratedModel
from engines.wenet.torchscript import TorchScriptModel
from tests.wenet.conftest import make_backend


@pytest.fixture(scope="module")
def model(tiny_model: GeneratedModel) -> TorchScriptModel:
    return TorchScriptModel(tiny_model.directory / "final.zip", len(tiny_model.units))


def test_exported_model_info(model: TorchScriptModel, tiny_model: GeneratedModel) -> None:
    info = model.info
    assert (info.subsampling_rate, info.right_context) == (6, 10)
    assert info.sos == info.eos == len(tiny_model.units) - 1
    assert not info.bidirectional_decoder and info.has_decoder


@pytest.mark.parametrize(("chunk", "left"), [(8, 2), (16, -1)])
def test_streaming_chunks_and_caches(model: TorchScriptModel, chunk: int, left: int) -> None:
    rng = np.random.default_rng(0)
    feats = (rng.standard_normal((400, 80)) + 10).astype(np.float32)
    schedule = ChunkSchedule(chunk, 6, 10, num_left_chunks=left)
    queue = FeatureQueue(schedule, 80)
    queue.push(feats)
    state = EncoderState()
    total = 0
    while (xs := queue.next_chunk(input_finished=False)) is not None:
        logp = model.forward_chunk(state, xs, schedule.required_cache_size(), keep_output=True)
        assert logp.shape == (chunk, model.info.vocab_size)
        assert np.allclose(np.exp(logp).sum(axis=1), 1.0, atol=1e-4)
        total += chunk
        layers, heads, cached, width = state.att_cache.shape
        assert (layers, heads, width) == (2, 2, 32)  # tiny: 2 blocks, 2 heads, 2 * d_k
        assert cached == (total if left < 0 else min(total, chunk * left))
        assert tuple(state.cnn_cache.shape) == (2, 1, 32, 4)  # kernel 5 - 1
    assert state.offset == total == len(state.encoder_out) * chunk
    state.reset()
    assert state.offset == 0 and state.att_cache is None and state.encoder_out == []


def test_too_few_frames_yield_nothing(model: TorchScriptModel) -> None:
    state = EncoderState()
    out = model.forward_chunk(state, np.zeros((10, 80), np.float32), -1, keep_output=False)
    assert out.shape == (0, model.info.vocab_size) and state.offset == 0


def test_rescoring_scores_hypotheses_with_eos(model: TorchScriptModel) -> None:
    state = EncoderState()
    feats = np.random.default_rng(1).standard_normal((101, 80)).astype(np.float32)
    model.forward_chunk(state, feats, 0, keep_output=True)
    scores = model.rescore(state, [[3, 4, 5], [3], []], reverse_weight=0.0)
    assert len(scores) == 3 and all(s < 0 for s in scores)
    # a prefix pays for its units plus <eos>; scores differ per hypothesis
    assert len(set(scores)) == 3
    assert model.rescore(EncoderState(), [[3]], 0.0) == [0.0]


async def test_rescoring_picks_the_final_among_the_n_best(tiny_model: GeneratedModel) -> None:
    backend = make_backend(tiny_model)
    assert backend.config.rescoring_weight == 1.0
    seen: list[list[tuple[int, ...]]] = []
    model = backend._model
    assert model is not None
    original = model.rescore

    def spy(
        state: EncoderState, hyps: Sequence[Sequence[int]], reverse_weight: float
    ) -> list[float]:
        seen.append([tuple(h) for h in hyps])
        return original(state, hyps, reverse_weight)

    model.rescore = spy  # type: ignore[method-assign]
    audio = bursts([("speech", 2.0)], seed=5)
    result = await backend.transcribe_file(audio, TranscribeOptions())
    assert len(seen) == 1 and len(seen[0]) == backend.config.second_beam_size
    chosen = tuple(t for s in result.segments for t in s.tokens)
    assert chosen in seen[0]
