"""Cutting audio into Whisper's <= 30 s windows without splitting words. Pure functions.

Windows are contiguous spans of the *original* audio, so a segment's absolute time is simply
window offset + Whisper's relative timestamp. Cuts are placed in pauses found by VAD.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A half-open sample range [start, end)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def speech_windows(speech: list[Span], max_samples: int, pad: int, total: int) -> list[Span]:
    """Group consecutive speech spans into windows no longer than `max_samples`.

    Whole spans are grouped (a cut never falls inside a span unless one span alone is too
    long, which VAD normally prevents), then each window is widened by `pad` samples each side
    without overlapping its neighbours. Silence outside the windows is skipped.
    """
    limit = max(1, max_samples - 2 * pad)
    groups: list[Span] = []
    for span in speech:
        for piece in _hard_split(span, limit):
            if groups and piece.end - groups[-1].start <= limit:
                groups[-1] = Span(groups[-1].start, piece.end)
            else:
                groups.append(piece)
    windows: list[Span] = []
    for i, group in enumerate(groups):
        low = windows[-1].end if windows else 0
        high = groups[i + 1].start if i + 1 < len(groups) else total
        windows.append(Span(max(low, group.start - pad), min(high, group.end + pad)))
    return windows


def covering_windows(total: int, speech: list[Span], max_samples: int) -> list[Span]:
    """Windows covering all of [0, total), each cut in the middle of the latest pause that
    fits, or hard at `max_samples` when no pause does."""
    if total <= 0:
        return []
    gaps = _gap_midpoints(speech)
    windows: list[Span] = []
    start = 0
    while total - start > max_samples:
        limit = start + max_samples
        cuts = [g for g in gaps if start < g <= limit]
        cut = cuts[-1] if cuts else limit
        windows.append(Span(start, cut))
        start = cut
    windows.append(Span(start, total))
    return windows


def _hard_split(span: Span, max_samples: int) -> list[Span]:
    return [
        Span(s, min(s + max_samples, span.end)) for s in range(span.start, span.end, max_samples)
    ]


def _gap_midpoints(speech: list[Span]) -> list[int]:
    return [
        (prev.end + nxt.start) // 2
        for prev, nxt in itertools.pairwise(speech)
        if nxt.start > prev.end
    ]
