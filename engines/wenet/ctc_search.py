"""CTC prefix beam search with optional hot-word context graph (WeNet's algorithm).

Each prefix keeps the log-probabilities of all alignments ending in blank (`s`) and in its
last unit (`ns`), plus the best single alignment (Viterbi) which gives every unit its frame
and posterior for timestamps and confidence. Ranking adds the context-graph bonus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engines.wenet.context_graph import ROOT, ContextGraph

NEG_INF = -math.inf
Prefix = tuple[int, ...]


def log_add(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    hi, lo = (a, b) if a > b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


class _Path:
    """A Viterbi path: frame and log-posterior of each emitted unit."""

    __slots__ = ("frames", "logps")

    def __init__(self, frames: tuple[int, ...] = (), logps: tuple[float, ...] = ()) -> None:
        self.frames = frames
        self.logps = logps

    def extend(self, frame: int, logp: float) -> _Path:
        return _Path((*self.frames, frame), (*self.logps, logp))

    def move_last(self, frame: int, logp: float) -> _Path:
        return _Path((*self.frames[:-1], frame), (*self.logps[:-1], logp))


_EMPTY_PATH = _Path()


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
        self.path_s = _EMPTY_PATH
        self.path_ns = _EMPTY_PATH
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
    def path(self) -> _Path:
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


@dataclass(frozen=True)
class Hypothesis:
    units: Prefix
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
        start = _Score()
        start.s = 0.0
        start.v_s = 0.0
        start.has_context = True
        self._hyps: dict[Prefix, _Score] = {(): start}
        self.frames_searched = 0

    def search(self, logp: npt.NDArray[np.float32]) -> None:
        """Advance over `logp` [frames, vocab] (log-posteriors of one chunk)."""
        if logp.ndim != 2 or logp.shape[0] == 0:
            return
        k = min(self.first_beam_size, logp.shape[1])
        if k < logp.shape[1]:
            top = np.argpartition(-logp, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(logp.shape[1]), logp.shape)
        for row, ids in zip(logp.tolist(), top.tolist(), strict=True):
            self._step(row, ids)
            self.frames_searched += 1

    def _step(self, row: list[float], ids: list[int]) -> None:
        t = self.frames_searched
        graph = self.context_graph
        nxt: dict[Prefix, _Score] = {}
        for unit in ids:
            p = row[unit]
            for prefix, cur in self._hyps.items():
                if unit == self.blank:
                    # *a + blank -> *a
                    same = nxt.get(prefix) or nxt.setdefault(prefix, _Score())
                    same.s = log_add(same.s, cur.score + p)
                    if cur.viterbi + p > same.v_s:
                        same.v_s = cur.viterbi + p
                        same.path_s = cur.path
                    same.copy_context(cur)
                elif prefix and unit == prefix[-1]:
                    # *a + a -> *a (repeat collapses)
                    same = nxt.get(prefix) or nxt.setdefault(prefix, _Score())
                    same.ns = log_add(same.ns, cur.ns + p)
                    if cur.v_ns + p > same.v_ns:
                        same.v_ns = cur.v_ns + p
                        path = cur.path_ns
                        # the unit's frame is its most confident one
                        same.path_ns = path.move_last(t, p) if p > path.logps[-1] else path
                    same.copy_context(cur)
                    if cur.s == NEG_INF:
                        continue
                    # *a blank + a -> *aa
                    longer = (*prefix, unit)
                    ext = nxt.get(longer) or nxt.setdefault(longer, _Score())
                    ext.ns = log_add(ext.ns, cur.s + p)
                    if cur.v_s + p > ext.v_ns:
                        ext.v_ns = cur.v_s + p
                        ext.path_ns = cur.path_s.extend(t, p)
                    ext.extend_context(graph, cur, unit)
                else:
                    # *a + b -> *ab
                    longer = (*prefix, unit)
                    ext = nxt.get(longer) or nxt.setdefault(longer, _Score())
                    ext.ns = log_add(ext.ns, cur.score + p)
                    if cur.viterbi + p > ext.v_ns:
                        ext.v_ns = cur.viterbi + p
                        ext.path_ns = cur.path.extend(t, p)
                    ext.extend_context(graph, cur, unit)
        ranked = sorted(nxt.items(), key=lambda item: item[1].total, reverse=True)
        self._hyps = dict(ranked[: self.second_beam_size])

    def finalize(self) -> None:
        """End of segment: give back the bonus of unfinished hot-word matches, re-rank."""
        graph = self.context_graph
        if graph is None:
            return
        for score in self._hyps.values():
            score.context_score += graph.finalize(score.context_state)
            score.context_state = ROOT
        self._hyps = dict(sorted(self._hyps.items(), key=lambda it: it[1].total, reverse=True))

    def hypotheses(self) -> list[Hypothesis]:
        """N-best, best first."""
        out = []
        for prefix, sc in self._hyps.items():
            path = sc.path
            out.append(
                Hypothesis(
                    units=prefix,
                    score=sc.total,
                    ctc_score=sc.score,
                    viterbi_score=sc.viterbi,
                    frames=path.frames,
                    logps=path.logps,
                    context_score=sc.context_score,
                )
            )
        return out

    def best(self) -> Hypothesis:
        return self.hypotheses()[0]
