from __future__ import annotations

import pytest

from engines.wenet.context_graph import ROOT, ContextGraph

S = 2.0


def walk(graph: ContextGraph, units: list[int]) -> tuple[float, int]:
    state, total = ROOT, 0.0
    for unit in units:
        delta, state = graph.forward(state, unit)
        total += delta
    return total, state


def test_full_match_keeps_one_bonus_per_unit() -> None:
    graph = ContextGraph.build([("abc", [1, 2, 3])], context_score=S)
    total, state = walk(graph, [1, 2, 3])
    # while the match stands it holds arcs + phrase bonus; giving back the arcs leaves 3 * S
    assert total + graph.finalize(state) == pytest.approx(3 * S)
    after, _ = walk(graph, [1, 2, 3, 9])
    assert after == pytest.approx(3 * S)


def test_partial_match_earns_while_it_lasts_then_gives_back() -> None:
    graph = ContextGraph.build([("abc", [1, 2, 3])], context_score=S)
    partial, state = walk(graph, [1, 2])
    assert partial == pytest.approx(2 * S)
    delta, state = graph.forward(state, 9)  # the match fails
    assert delta == pytest.approx(-2 * S)
    assert state == ROOT


def test_finalize_gives_back_an_unfinished_match() -> None:
    graph = ContextGraph.build([("abc", [1, 2, 3])], context_score=S)
    partial, state = walk(graph, [7, 1, 2])
    assert partial == pytest.approx(2 * S)
    assert graph.finalize(state) == pytest.approx(-2 * S)
    assert graph.finalize(ROOT) == 0.0


def test_fail_arc_keeps_the_matching_suffix() -> None:
    # "ab c" fails after "a b", but "b c" is a phrase: fall back to its "b" and go on
    graph = ContextGraph.build([("abx", [1, 2, 5]), ("bc", [2, 3])], context_score=S)
    partial, state = walk(graph, [1, 2])
    assert partial == pytest.approx(2 * S)
    delta, state = graph.forward(state, 3)
    # give back "a b" (2S), keep "b" (S), earn "c" (S) and the phrase "b c" (2S)
    assert delta == pytest.approx(-2 * S + S + S + 2 * S)
    total = partial + delta + graph.finalize(state)
    assert total == pytest.approx(2 * S)
    assert graph.matched([1, 2, 3]) == ["bc"]


def test_phrase_inside_a_longer_phrase_is_rewarded() -> None:
    graph = ContextGraph.build([("new", [1]), ("new york", [1, 2])], context_score=S)
    total, state = walk(graph, [1, 2])
    assert total + graph.finalize(state) == pytest.approx(S + 2 * S)
    assert graph.matched([1, 2]) == ["new", "new york"]
    only_new, state = walk(graph, [1, 9])
    assert only_new + graph.finalize(state) == pytest.approx(S)


def test_incremental_score_grows_along_the_phrase() -> None:
    graph = ContextGraph.build([("abc", [1, 2, 3])], context_score=1.0, incremental_score=0.5)
    total, state = walk(graph, [1, 2, 3])
    assert total + graph.finalize(state) == pytest.approx(1.0 + 1.5 + 2.0)


def test_shared_prefixes_share_states() -> None:
    graph = ContextGraph.build([("ab", [1, 2]), ("ac", [1, 3])], context_score=S)
    assert graph.num_states == 4
    assert graph.matched([1, 3, 1, 2]) == ["ac", "ab"]
