"""Prefix beam search against brute force over every alignment of small matrices."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from engines.wenet.context_graph import ContextGraph
from engines.wenet.ctc_search import CtcPrefixBeamSearch, log_add

BLANK = 0


def random_logp(frames: int, vocab: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(frames, vocab))
    logp: np.ndarray = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return logp.astype(np.float32)


def collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    out: list[int] = []
    previous = None
    for unit in path:
        if unit != previous and unit != BLANK:
            out.append(unit)
        previous = unit
    return tuple(out)


Best = dict[tuple[int, ...], tuple[float, tuple[int, ...]]]


def brute_force(logp: np.ndarray) -> tuple[dict[tuple[int, ...], float], Best]:
    """Exact prefix log-probabilities, and each prefix's best alignment."""
    totals: dict[tuple[int, ...], float] = {}
    best: Best = {}
    frames, vocab = logp.shape
    for path in itertools.product(range(vocab), repeat=frames):
        score = float(sum(logp[t, u] for t, u in enumerate(path)))
        prefix = collapse(path)
        totals[prefix] = log_add(totals.get(prefix, -math.inf), score)
        if prefix not in best or score > best[prefix][0]:
            best[prefix] = (score, path)
    return totals, best


def peak_frames(path: tuple[int, ...], logp: np.ndarray) -> list[int]:
    """Per emitted unit, the frame of its run with the highest posterior (first on ties)."""
    frames: list[int] = []
    t = 0
    while t < len(path):
        unit = path[t]
        end = t
        while end + 1 < len(path) and path[end + 1] == unit:
            end += 1
        if unit != BLANK:
            run = [logp[i, unit] for i in range(t, end + 1)]
            frames.append(t + int(np.argmax(run)))
        t = end + 1
    return frames


@pytest.mark.parametrize(("frames", "vocab", "seed"), [(4, 3, 0), (5, 3, 1), (4, 4, 2), (6, 2, 3)])
def test_unpruned_search_matches_brute_force(frames: int, vocab: int, seed: int) -> None:
    logp = random_logp(frames, vocab, seed)
    totals, best = brute_force(logp)
    search = CtcPrefixBeamSearch(blank=BLANK, first_beam_size=vocab, second_beam_size=10_000)
    search.search(logp[:2])  # two chunks: state carries over
    search.search(logp[2:])
    hyps = search.hypotheses()
    assert {h.units for h in hyps} == set(totals)
    for hyp in hyps:
        assert hyp.ctc_score == pytest.approx(totals[hyp.units], abs=1e-4)
        assert hyp.viterbi_score == pytest.approx(best[hyp.units][0], abs=1e-4)
        assert list(hyp.frames) == peak_frames(best[hyp.units][1], logp)
        assert list(hyp.logps) == pytest.approx(
            [logp[f, u] for f, u in zip(hyp.frames, hyp.units, strict=True)]
        )
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
    assert hyps[0].units == ranked[0][0]


def test_pruned_search_keeps_the_best_prefixes() -> None:
    logp = random_logp(6, 4, 7)
    totals, _ = brute_force(logp)
    search = CtcPrefixBeamSearch(blank=BLANK, first_beam_size=4, second_beam_size=3)
    search.search(logp)
    hyps = search.hypotheses()
    assert len(hyps) == 3
    top = max(totals, key=lambda p: totals[p])
    assert hyps[0].units == top
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_context_bonus_is_added_per_prefix_and_given_back_at_finalize() -> None:
    logp = random_logp(5, 3, 11)
    totals, _ = brute_force(logp)
    graph = ContextGraph.build([("ab", [1, 2])], context_score=1.5)

    def bonus(prefix: tuple[int, ...], finalize: bool) -> float:
        state, total = 0, 0.0
        for unit in prefix:
            delta, state = graph.forward(state, unit)
            total += delta
        return total + (graph.finalize(state) if finalize else 0.0)

    search = CtcPrefixBeamSearch(
        blank=BLANK, first_beam_size=3, second_beam_size=10_000, context_graph=graph
    )
    search.search(logp)
    for hyp in search.hypotheses():
        assert hyp.score == pytest.approx(totals[hyp.units] + bonus(hyp.units, False), abs=1e-4)
    search.finalize()
    hyps = search.hypotheses()
    for hyp in hyps:
        assert hyp.score == pytest.approx(totals[hyp.units] + bonus(hyp.units, True), abs=1e-4)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_hot_word_flips_a_close_call() -> None:
    # frame 1 prefers unit 1 slightly over unit 2; "2" is the hot word
    probs = np.array([[0.9, 0.05, 0.05], [0.05, 0.5, 0.45], [0.9, 0.05, 0.05]])
    logp = np.log(probs).astype(np.float32)
    plain = CtcPrefixBeamSearch(blank=BLANK, first_beam_size=3, second_beam_size=4)
    plain.search(logp)
    assert plain.best().units == (1,)
    graph = ContextGraph.build([("two", [2])], context_score=1.0)
    biased = CtcPrefixBeamSearch(
        blank=BLANK, first_beam_size=3, second_beam_size=4, context_graph=graph
    )
    biased.search(logp)
    biased.finalize()
    assert biased.best().units == (2,)
    assert biased.best().context_score == pytest.approx(1.0)


def test_reset_starts_from_nothing() -> None:
    search = CtcPrefixBeamSearch(blank=BLANK, first_beam_size=3, second_beam_size=4)
    search.search(random_logp(4, 3, 5))
    search.reset()
    best = search.best()
    assert best.units == () and best.score == 0.0 and search.frames_searched == 0
