"""Attention rescoring at an endpoint: the attention decoder re-ranks the CTC n-best."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.wenet.ctc_search import Hypothesis
from engines.wenet.model import AsrModel, EncoderState


def sequence_score(logp: Any, hyp: Sequence[int], eos: int) -> float:
    """Sum of a decoder's log-probs [positions, vocab] along `hyp`, then `<eos>`."""
    total = 0.0
    for position, unit in enumerate(hyp):
        total += float(logp[position, unit])
    return total + float(logp[len(hyp), eos])


def pad_hypotheses(
    hyps: Sequence[Sequence[int]], sos: int, eos: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Decoder input: `<sos>` + units, padded with `<eos>` [n, longest + 1]; and lengths."""
    width = max(len(h) for h in hyps) + 1
    padded = np.full((len(hyps), width), eos, dtype=np.int64)
    padded[:, 0] = sos
    for i, hyp in enumerate(hyps):
        padded[i, 1 : len(hyp) + 1] = hyp
    lens = np.array([len(h) + 1 for h in hyps], dtype=np.int64)
    return padded, lens


def decoder_scores(
    logp: Any,
    r_logp: Any,
    hyps: Sequence[Sequence[int]],
    *,
    eos: int,
    reverse_weight: float,
) -> list[float]:
    """Per hypothesis: left-to-right score, mixed with the right-to-left one when used."""
    scores = []
    for i, hyp in enumerate(hyps):
        score = sequence_score(logp[i], hyp, eos)
        if reverse_weight > 0:
            backward = sequence_score(r_logp[i], list(reversed(hyp)), eos)
            score = score * (1 - reverse_weight) + backward * reverse_weight
        scores.append(score)
    return scores


def combined_scores(
    hyps: Sequence[Hypothesis],
    attention: Sequence[float],
    *,
    rescoring_weight: float,
    ctc_weight: float,
) -> list[float]:
    """WeNet's final score: `rescoring_weight * attention + ctc_weight * ctc`. The CTC score
    carries the hot-word bonus, so biasing still counts, weighted by `ctc_weight`."""
    return [
        rescoring_weight * att + ctc_weight * hyp.score
        for hyp, att in zip(hyps, attention, strict=True)
    ]


def rescore(
    model: AsrModel,
    state: EncoderState,
    hyps: Sequence[Hypothesis],
    *,
    rescoring_weight: float,
    ctc_weight: float,
    reverse_weight: float,
) -> list[Hypothesis]:
    """`hyps` re-ranked best first; unchanged when rescoring is off or impossible."""
    if rescoring_weight <= 0 or len(hyps) == 0 or not state.encoder_out:
        return list(hyps)
    if all(not h.units for h in hyps):
        return list(hyps)
    attention = model.rescore(state, [h.units for h in hyps], reverse_weight)
    scores = combined_scores(
        hyps, attention, rescoring_weight=rescoring_weight, ctc_weight=ctc_weight
    )
    order = sorted(range(len(hyps)), key=lambda i: scores[i], reverse=True)
    return [hyps[i] for i in order]
