"""CTC frame times -> unit/word time spans, and splitting a hypothesis into segments.

A CTC unit fires on one frame. Its span reaches `gap` either side of that frame, or halfway to
a neighbour that is closer, so neighbouring spans never overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engines.text import join_words
from engines.wenet.text import split_words


@dataclass(frozen=True)
class TimedUnit:
    unit_id: int
    unit: str
    start: float
    end: float
    logp: float
    """Log posterior of the unit on its frame (Viterbi path)."""


@dataclass(frozen=True)
class TimedWord:
    word: str
    start: float
    end: float
    probability: float


def unit_spans(frames: Sequence[int], frame_s: float, gap_s: float) -> list[tuple[float, float]]:
    """Spans (seconds) of units that fired on `frames` (encoder frames of `frame_s` seconds)."""
    centres = [f * frame_s for f in frames]
    spans: list[tuple[float, float]] = []
    for i, c in enumerate(centres):
        before = gap_s if i == 0 else min(gap_s, (c - centres[i - 1]) / 2)
        after = gap_s if i == len(centres) - 1 else min(gap_s, (centres[i + 1] - c) / 2)
        spans.append((max(0.0, c - before), c + after))
    return spans


def timed_units(
    unit_ids: Sequence[int],
    units: Sequence[str],
    frames: Sequence[int],
    logps: Sequence[float],
    *,
    frame_s: float,
    gap_s: float,
    offset_s: float = 0.0,
) -> list[TimedUnit]:
    spans = unit_spans(frames, frame_s, gap_s)
    return [
        TimedUnit(uid, unit, offset_s + start, offset_s + end, logp)
        for uid, unit, (start, end), logp in zip(unit_ids, units, spans, logps, strict=True)
    ]


def words_of(units: Sequence[TimedUnit], *, lowercase: bool = False) -> list[TimedWord]:
    words: list[TimedWord] = []
    for pieces in split_words([u.unit for u in units]):
        members = [units[p.index] for p in pieces]
        text = "".join(p.text for p in pieces)
        prob = sum(math.exp(u.logp) for u in members) / len(members)
        words.append(
            TimedWord(text.lower() if lowercase else text, members[0].start, members[-1].end, prob)
        )
    return _dedupe_shared_units(words)


def _dedupe_shared_units(words: list[TimedWord]) -> list[TimedWord]:
    """CJK characters inside one unit share its span; split it evenly between them."""
    out: list[TimedWord] = []
    i = 0
    while i < len(words):
        j = i
        while (
            j + 1 < len(words)
            and words[j + 1].start == words[i].start
            and words[j + 1].end == words[i].end
        ):
            j += 1
        group = words[i : j + 1]
        if len(group) == 1:
            out.append(group[0])
        else:
            step = (group[0].end - group[0].start) / len(group)
            for k, w in enumerate(group):
                start = group[0].start + k * step
                out.append(TimedWord(w.word, start, start + step, w.probability))
        i = j + 1
    return out


def text_of(words: Sequence[TimedWord]) -> str:
    return join_words([w.word for w in words])


def split_on_pauses(
    words: Sequence[TimedWord], *, min_pause_s: float, max_length_s: float
) -> list[list[TimedWord]]:
    """Segments of words: a new one after a pause of `min_pause_s`, or before a word that
    would stretch the current one past `max_length_s`."""
    segments: list[list[TimedWord]] = []
    for word in words:
        if segments:
            current = segments[-1]
            pause = word.start - current[-1].end
            too_long = word.end - current[0].start > max_length_s
            if pause < min_pause_s and not too_long:
                current.append(word)
                continue
        segments.append([word])
    return segments
