"""CTC prefix beam search with optional hot-word context graph (WeNet's algorithm).

Each prefix keeps the log-probabilities of all alignments ending in blank (`s`) and in its
last unit (`ns`), plus the best single alignment (Viterbi) which gives every unit its frame
and posterior for timestamps and confidence. Ranking adds the context-graph bonus.

Prefixes are interned as (parent id, unit) nodes and Viterbi paths are linked lists, so
extending a hypothesis costs O(1) however long it is.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from engines.wenet.context_graph import ROOT, ContextGraph

NEG_INF = -math.inf
EMPTY = 0
"""Id of the empty prefix."""


def log_add(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    hi, lo = (a, b) if a > b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


class _Emission(NamedTuple):
    """The last unit of a Viterbi path: its frame, log-posterior, and the path before it."""

    frame: int
    logp: float
    before: _Emission | None


def _unroll(path: _Emission | None) -> tuple[tuple[int, ...], tuple[float, ...]]:
    frames: list[int] = []
    logps: list[float] = []
    while path is not None:
        frames.append(path.frame)
        logps.append(path.logp)
        path = path.before
    return tuple(reversed(frames)), tuple(reversed(logps))


class _Score:
    __slots__ = (
        "context_score",
        "context_state",
        "has_context",
        "ns",
        "path_ns",
        "path_s",
        "s",
        "v_ns",
        "v_s",
    )

    def __init__(self) -> None:
        self.s = NEG_INF
        self.ns = NEG_INF
        self.v_s = NEG_INF
        self.v_ns = NEG_INF
        self.path_s: _Emission | None = None
        self.path_ns: _Emission | None = None
        self.has_context = False
        self.context_state = ROOT
        self.context_score = 0.0

    @property
    def score(self) -> float:
        return log_add(self.s, self.ns)

    @property
    def viterbi(self) -> float:
        return max(self.v_s, self.v_ns)

    @property
    def path(self) -> _Emission | None:
        return self.path_s if self.v_s > self.v_ns else self.path_ns

    @property
    def total(self) -> float:
        return self.score + self.context_score

    def copy_context(self, other: _Score) -> None:
        if not self.has_context:
            self.context_state = other.context_state
            self.context_score = other.context_score
            self.has_context = True

    def extend_context(self, graph: ContextGraph | None, other: _Score, unit: int) -> None:
        if self.has_context:
            return
        self.has_context = True
        if graph is None:
            self.context_state, self.context_score = other.context_state, other.context_score
            return
        delta, self.context_state = graph.forward(other.context_state, unit)
        self.context_score = other.context_score + delta


def _by_total(item: tuple[int, _Score]) -> float:
    return item[1].total


@dataclass(frozen=True)
class Hypothesis:
    units: tuple[int, ...]
    score: float
    """Log-probability of the prefix over all alignments plus its context bonus."""
    ctc_score: float
    """Log-probability of the prefix over all alignments."""
    viterbi_score: float
    frames: tuple[int, ...]
    """Frame (within the segment) where each unit fired on the best alignment."""
    logps: tuple[float, ...]
    """Log-posterior of each unit on that frame."""
    context_score: float = 0.0


class CtcPrefixBeamSearch:
    def __init__(
        self,
        *,
        blank: int = 0,
        first_beam_size: int = 10,
        second_beam_size: int = 10,
        context_graph: ContextGraph | None = None,
    ) -> None:
        self.blank = blank
        self.first_beam_size = first_beam_size
        self.second_beam_size = second_beam_size
        self.context_graph = context_graph
        self.reset()

    def reset(self) -> None:
        self._parent = [EMPTY]
        self._last = [-1]
        self._ids: dict[tuple[int, int], int] = {}
        start = _Score()
        start.s = 0.0
        start.v_s = 0.0
        start.has_context = True
        self._hyps: dict[int, _Score] = {EMPTY: start}
        self.frames_searched = 0

    def _child(self, prefix: int, unit: int) -> int:
        key = (prefix, unit)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._parent)
            self._parent.append(prefix)
            self._last.append(unit)
        return found

    def _units(self, prefix: int) -> tuple[int, ...]:
        units: list[int] = []
        while prefix != EMPTY:
            units.append(self._last[prefix])
            prefix = self._parent[prefix]
        return tuple(reversed(units))

    def search(self, logp: npt.NDArray[np.float32]) -> None:
        """Advance over `logp` [frames, vocab] (log-posteriors of one chunk)."""
        if logp.ndim != 2 or logp.shape[0] == 0:
            return
        k = min(self.first_beam_size, logp.shape[1])
        if k < logp.shape[1]:
            top = np.argpartition(-logp, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(logp.shape[1]), logp.shape)
        values = np.take_along_axis(logp, top, axis=1)
        for ids, probs in zip(top.tolist(), values.tolist(), strict=True):
            self._step(ids, probs)
            self.frames_searched += 1

    def _step(self, ids: list[int], probs: list[float]) -> None:
        t = self.frames_searched
        graph = self.context_graph
        blank = self.blank
        last = self._last
        nxt: dict[int, _Score] = {}
        # per-hypothesis values every candidate unit needs, computed once per frame
        current = [(p, cur, cur.score, cur.viterbi, cur.path) for p, cur in self._hyps.items()]

        def entry(prefix: int) -> _Score:
            found = nxt.get(prefix)
            if found is None:
                found = nxt[prefix] = _Score()
            return found

        for unit, p in zip(ids, probs, strict=True):
            if unit == blank:
                for prefix, cur, score, viterbi, path in current:
                    # *a + blank -> *a
                    same = entry(prefix)
                    same.s = log_add(same.s, score + p)
                    if viterbi + p > same.v_s:
                        same.v_s = viterbi + p
                        same.path_s = path
                    same.copy_context(cur)
                continue
            for prefix, cur, score, viterbi, path in current:
                if unit == last[prefix]:
                    # *a + a -> *a (repeat collapses)
                    same = entry(prefix)
                    same.ns = log_add(same.ns, cur.ns + p)
                    if cur.v_ns + p > same.v_ns:
                        same.v_ns = cur.v_ns + p
                        run = cur.path_ns
                        # the unit's frame is its most confident one
                        if run is not None and p > run.logp:
                            run = _Emission(t, p, run.before)
                        same.path_ns = run
                    same.copy_context(cur)
                    if cur.s == NEG_INF:
                        continue
                    # *a blank + a -> *aa
                    ext = entry(self._child(prefix, unit))
                    ext.ns = log_add(ext.ns, cur.s + p)
                    if cur.v_s + p > ext.v_ns:
                        ext.v_ns = cur.v_s + p
                        ext.path_ns = _Emission(t, p, cur.path_s)
                else:
                    # *a + b -> *ab
                    ext = entry(self._child(prefix, unit))
                    ext.ns = log_add(ext.ns, score + p)
                    if viterbi + p > ext.v_ns:
                        ext.v_ns = viterbi + p
                        ext.path_ns = _Emission(t, p, path)
                ext.extend_context(graph, cur, unit)
        self._hyps = dict(heapq.nlargest(self.second_beam_size, nxt.items(), key=_by_total))

    def finalize(self) -> None:
        """End of segment: give back the bonus of unfinished hot-word matches, re-rank."""
        graph = self.context_graph
        if graph is None:
            return
        for score in self._hyps.values():
            score.context_score += graph.finalize(score.context_state)
            score.context_state = ROOT
        self._hyps = dict(sorted(self._hyps.items(), key=_by_total, reverse=True))

    def hypotheses(self) -> list[Hypothesis]:
        """N-best, best first."""
        return [self._hypothesis(prefix, sc) for prefix, sc in self._hyps.items()]

    def best(self) -> Hypothesis:
        prefix, sc = next(iter(self._hyps.items()))
        return self._hypothesis(prefix, sc)

    def _hypothesis(self, prefix: int, sc: _Score) -> Hypothesis:
        frames, logps = _unroll(sc.path)
        return Hypothesis(
            units=self._units(prefix),
            score=sc.total,
            ctc_score=sc.score,
            viterbi_score=sc.viterbi,
            frames=frames,
            logps=logps,
            context_score=sc.context_score,
        )
