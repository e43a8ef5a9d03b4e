from __future__ import annotations

import itertools

from engines.whisper.segments import compression_ratio, split_timestamped
from engines.whisper.windows import Span, covering_windows, speech_windows

SR = 16_000
MAX = 30 * SR


def test_speech_windows_group_whole_spans_and_never_exceed_the_limit() -> None:
    speech = [Span(i * 5 * SR, i * 5 * SR + 4 * SR) for i in range(12)]  # 4 s speech, 1 s gap
    windows = speech_windows(speech, MAX, pad=SR // 5, total=60 * SR)
    assert all(w.length <= MAX for w in windows)
    assert windows[0].start == 0
    for span in speech:  # every span lies wholly inside one window: no word is cut
        assert sum(1 for w in windows if w.start <= span.start and span.end <= w.end) == 1
    for a, b in itertools.pairwise(windows):
        assert a.end <= b.start


def test_speech_windows_cut_a_too_long_span_hard() -> None:
    windows = speech_windows([Span(0, 70 * SR)], MAX, pad=0, total=70 * SR)
    assert [w.length for w in windows] == [MAX, MAX, 10 * SR]


def test_covering_windows_cut_in_pauses_and_cover_everything() -> None:
    speech = [Span(0, 20 * SR), Span(22 * SR, 45 * SR), Span(47 * SR, 70 * SR)]
    windows = covering_windows(70 * SR, speech, MAX)
    assert windows[0] == Span(0, 21 * SR)
    assert windows[-1].end == 70 * SR
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    assert all(w.length <= MAX for w in windows)


def test_split_timestamped_pairs_and_open_tail() -> None:
    tb, eot = 1000, 900
    tokens = [tb + 0, 1, 2, tb + 100, tb + 100, 3, tb + 150, tb + 160, 4, 5]
    pieces = split_timestamped(tokens, tb, eot, window_duration=5.0)
    assert [(p.start, p.end, p.text_tokens) for p in pieces] == [
        (0.0, 2.0, [1, 2]),
        (2.0, 3.0, [3]),
        (3.2, 5.0, [4, 5]),
    ]


def test_compression_ratio_flags_repetition() -> None:
    assert compression_ratio("thank you " * 40) > 2.4
    assert compression_ratio("ask not what your country can do for you") < 2.4
