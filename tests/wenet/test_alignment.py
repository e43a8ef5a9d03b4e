from __future__ import annotations

import math

import pytest

from engines.wenet.alignment import (
    TimedWord,
    split_on_pauses,
    text_of,
    timed_units,
    unit_spans,
    words_of,
)

B = "\u2581"


def test_spans_reach_the_gap_or_halfway_to_a_neighbour() -> None:
    spans = unit_spans([10, 12, 40], frame_s=0.04, gap_s=0.1)
    assert spans[0] == pytest.approx((0.3, 0.44))
    assert spans[1] == pytest.approx((0.44, 0.58))
    assert spans[2] == pytest.approx((1.5, 1.7))
    assert unit_spans([0], frame_s=0.04, gap_s=0.1)[0] == pytest.approx((0.0, 0.1))


def test_words_take_their_units_times_and_mean_posterior() -> None:
    units = timed_units(
        [5, 6, 7],
        [f"{B}HEL", "LO", f"{B}YOU"],
        [10, 15, 30],
        [math.log(0.8), math.log(0.6), math.log(0.9)],
        frame_s=0.04,
        gap_s=0.1,
        offset_s=2.0,
    )
    words = words_of(units)
    assert [w.word for w in words] == ["HELLO", "YOU"]
    assert words[0].start == pytest.approx(2.3) and words[0].end == pytest.approx(2.7)
    assert words[0].probability == pytest.approx(0.7)
    assert words[1].start == pytest.approx(3.1)
    assert text_of(words) == "HELLO YOU"


def test_cjk_characters_of_one_unit_split_its_span() -> None:
    units = timed_units([3], ["你好"], [10], [0.0], frame_s=0.04, gap_s=0.1)
    words = words_of(units)
    assert [w.word for w in words] == ["你", "好"]
    assert words[0].end == pytest.approx(words[1].start)
    assert text_of(words) == "你好"


def w(word: str, start: float, end: float) -> TimedWord:
    return TimedWord(word, start, end, 1.0)


def test_split_on_pauses_and_length() -> None:
    words = [w("a", 0.0, 0.5), w("b", 0.6, 1.0), w("c", 2.5, 3.0), w("d", 3.1, 9.5)]
    parts = split_on_pauses(words, min_pause_s=1.0, max_length_s=100)
    assert [[x.word for x in p] for p in parts] == [["a", "b"], ["c", "d"]]
    parts = split_on_pauses(words, min_pause_s=1.0, max_length_s=5.0)
    assert [[x.word for x in p] for p in parts] == [["a", "b"], ["c"], ["d"]]
    assert split_on_pauses([], min_pause_s=1.0, max_length_s=5.0) == []
