"""Per-request hot words -> a cached `ContextGraph` in the model's units."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

from engines.wenet.context_graph import ContextGraph
from engines.wenet.units import UnitTable

logger = logging.getLogger(__name__)


def normalise(hot_words: Sequence[str]) -> tuple[str, ...]:
    """Stripped, de-duplicated, in order; the cache key."""
    return tuple(dict.fromkeys(w.strip() for w in hot_words if w.strip()))


def build_graph(
    hot_words: Sequence[str],
    units: UnitTable,
    *,
    context_score: float,
    incremental_score: float = 0.0,
    max_contexts: int = 5000,
    max_context_length: int = 100,
) -> ContextGraph | None:
    """None when no hot word can be written in the model's units."""
    phrases: list[tuple[str, list[int]]] = []
    for word in normalise(hot_words)[:max_contexts]:
        ids = units.tokenize(word)
        if ids is None:
            logger.warning("hot word %r has no spelling in the model's units; ignored", word)
            continue
        if len(ids) > max_context_length:
            logger.warning("hot word %r is longer than %d units; ignored", word, max_context_length)
            continue
        phrases.append((word, ids))
    if not phrases:
        return None
    return ContextGraph.build(
        phrases, context_score=context_score, incremental_score=incremental_score
    )


class ContextGraphCache:
    """LRU of built graphs by hot-word list; safe to share between sessions and threads."""

    def __init__(
        self,
        units: UnitTable,
        *,
        context_score: float,
        incremental_score: float = 0.0,
        max_contexts: int = 5000,
        max_context_length: int = 100,
        size: int = 64,
    ) -> None:
        self._units = units
        self._context_score = context_score
        self._incremental_score = incremental_score
        self._max_contexts = max_contexts
        self._max_context_length = max_context_length
        self._size = size
        self._graphs: OrderedDict[tuple[str, ...], ContextGraph | None] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, hot_words: Sequence[str]) -> ContextGraph | None:
        key = normalise(hot_words)
        if not key:
            return None
        with self._lock:
            if key in self._graphs:
                self._graphs.move_to_end(key)
                return self._graphs[key]
        graph = build_graph(
            key,
            self._units,
            context_score=self._context_score,
            incremental_score=self._incremental_score,
            max_contexts=self._max_contexts,
            max_context_length=self._max_context_length,
        )
        with self._lock:
            self.builds += 1
            self._graphs[key] = graph
            while len(self._graphs) > self._size:
                self._graphs.popitem(last=False)
        return graph
