from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.wenet.ctc_search import Hypothesis
from engines.wenet.model import EncoderState, ModelInfo
from engines.wenet.rescoring import combined_scores, rescore, sequence_score


def hyp(units: tuple[int, ...], score: float) -> Hypothesis:
    return Hypothesis(units, score, score, score, tuple(range(len(units))), (0.0,) * len(units))


class FakeDecoder:
    info = ModelInfo(4, 6, 9, 9, False, 10)

    def __init__(self, scores: dict[tuple[int, ...], float]) -> None:
        self.scores = scores

    def forward_chunk(self, *args: object) -> np.ndarray:
        raise NotImplementedError

    def rescore(
        self, state: EncoderState, hyps: Sequence[Sequence[int]], reverse_weight: float
    ) -> list[float]:
        return [self.scores[tuple(h)] for h in hyps]

    def close(self) -> None:
        pass


def test_sequence_score_adds_eos() -> None:
    logp = np.log(np.full((3, 4), 0.25))
    logp[0, 1], logp[1, 2], logp[2, 3] = -1.0, -2.0, -0.5
    assert sequence_score(logp, [1, 2], eos=3) == -3.5


def test_attention_scores_can_overturn_the_ctc_ranking() -> None:
    hyps = [hyp((1,), -1.0), hyp((2,), -1.5)]
    decoder = FakeDecoder({(1,): -5.0, (2,): -1.0})
    state = EncoderState(encoder_out=[object()])
    assert combined_scores(hyps, [-5.0, -1.0], rescoring_weight=1.0, ctc_weight=0.5) == [
        -5.5,
        -1.75,
    ]
    ranked = rescore(decoder, state, hyps, rescoring_weight=1.0, ctc_weight=0.5, reverse_weight=0.0)
    assert [h.units for h in ranked] == [(2,), (1,)]


def test_rescoring_off_or_without_encoder_output_keeps_the_order() -> None:
    hyps = [hyp((1,), -1.0), hyp((2,), -1.5)]
    decoder = FakeDecoder({(1,): -5.0, (2,): -1.0})
    for weight, state in [(0.0, EncoderState(encoder_out=[object()])), (1.0, EncoderState())]:
        ranked = rescore(
            decoder, state, hyps, rescoring_weight=weight, ctc_weight=0.5, reverse_weight=0.0
        )
        assert [h.units for h in ranked] == [(1,), (2,)]
