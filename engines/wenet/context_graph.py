"""Hot-word context graph: a trie of unit sequences with Aho-Corasick fail arcs.

A hypothesis carries a graph state. Each unit that extends a match earns the arc's bonus; a
unit that breaks a partial match follows fail arcs and gives back the bonus of the abandoned
part (keeping what the longest matching suffix is worth). Reaching the end of a phrase adds
its whole bonus once more, so that the later give-back leaves exactly one phrase bonus: a
complete match keeps its bonus, a partial one keeps nothing once it fails or is finalised.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

ROOT = 0


@dataclass
class ContextGraph:
    children: list[dict[int, int]] = field(default_factory=lambda: [{}])
    fail: list[int] = field(default_factory=lambda: [ROOT])
    node_score: list[float] = field(default_factory=lambda: [0.0])
    """Bonus accumulated from the root to the node (what a partial match holds)."""
    output_score: list[float] = field(default_factory=lambda: [0.0])
    """Bonus of every phrase that ends here, including phrases ending in a suffix."""
    phrase: list[str | None] = field(default_factory=lambda: [None])

    @classmethod
    def build(
        cls,
        phrases: Sequence[tuple[str, Sequence[int]]],
        *,
        context_score: float,
        incremental_score: float = 0.0,
    ) -> ContextGraph:
        """`phrases`: (text, unit ids). Unit n (from 0) of a phrase earns
        `context_score + n * incremental_score`."""
        graph = cls()
        for text, units in phrases:
            node = ROOT
            for depth, unit in enumerate(units):
                child = graph.children[node].get(unit)
                if child is None:
                    child = graph._add(node, context_score + depth * incremental_score)
                    graph.children[node][unit] = child
                node = child
            if units:
                graph.phrase[node] = text
        graph._link()
        return graph

    def _add(self, parent: int, arc_score: float) -> int:
        self.children.append({})
        self.fail.append(ROOT)
        self.node_score.append(self.node_score[parent] + arc_score)
        self.output_score.append(0.0)
        self.phrase.append(None)
        return len(self.children) - 1

    def _link(self) -> None:
        """Breadth-first: fail arcs, then output scores (which need the fail target's)."""
        queue = deque([ROOT])
        while queue:
            node = queue.popleft()
            own = self.node_score[node] if self.phrase[node] is not None else 0.0
            self.output_score[node] = own + (
                self.output_score[self.fail[node]] if node != ROOT else 0.0
            )
            for unit, child in self.children[node].items():
                self.fail[child] = ROOT if node == ROOT else self._goto(self.fail[node], unit)
                queue.append(child)

    def _goto(self, state: int, unit: int) -> int:
        while True:
            child = self.children[state].get(unit)
            if child is not None:
                return child
            if state == ROOT:
                return ROOT
            state = self.fail[state]

    @property
    def num_states(self) -> int:
        return len(self.children)

    def forward(self, state: int, unit: int) -> tuple[float, int]:
        """(score delta, next state) for appending `unit` to a hypothesis in `state`."""
        nxt = self._goto(state, unit)
        return self.node_score[nxt] - self.node_score[state] + self.output_score[nxt], nxt

    def finalize(self, state: int) -> float:
        """Score delta at the end of an utterance: give back an unfinished match's bonus."""
        return -self.node_score[state]

    def matched(self, units: Sequence[int]) -> list[str]:
        """Phrases found in a unit sequence, in order (for logs and tests)."""
        found: list[str] = []
        state = ROOT
        for unit in units:
            state = self._goto(state, unit)
            node = state
            while node != ROOT:
                text = self.phrase[node]
                if text is not None:
                    found.append(text)
                node = self.fail[node]
        return found
