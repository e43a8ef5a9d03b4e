"""Timing of dynamic batches: each window's wait in the batch queue, and the batch it joined,
as metrics and as spans in the trace of the request (or realtime session) it belongs to.

A batch holds windows of several requests, so each of those traces gets its own `batch` span
(same times, same `theo.batch.id`) with an `inference` child for the model call.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context

from serve.telemetry.tracing import current_context, timed_span

T = TypeVar("T")
_batch_ids = itertools.count(1)


class Observer(Protocol):
    def observe(self, value: float) -> None: ...


@dataclass
class QueuedWindow(Generic[T]):
    """A job on its way into a batch, with the trace it belongs to and when it was queued."""

    job: T
    context: Context = field(default_factory=current_context)
    enqueued_ns: int = field(default_factory=time.time_ns)
    enqueued_s: float = field(default_factory=time.perf_counter)


class BatchTimer(Generic[T]):
    def __init__(self, items: Sequence[QueuedWindow[T]], wait: Observer) -> None:
        self.items = list(items)
        self.batch_id = next(_batch_ids)
        self.start_ns = time.time_ns()
        self.start_s = time.perf_counter()
        self.inference_ns = (self.start_ns, self.start_ns)
        for item in self.items:
            wait.observe(max(0.0, self.start_s - item.enqueued_s))
            timed_span("queue_wait", item.context, item.enqueued_ns, self.start_ns)

    @contextmanager
    def inference(self) -> Iterator[None]:
        started = time.time_ns()
        try:
            yield
        finally:
            self.inference_ns = (started, time.time_ns())

    def finish(self) -> float:
        """Record the batch spans; returns the batch's duration in seconds."""
        end_ns = time.time_ns()
        attributes = {"theo.batch.size": len(self.items), "theo.batch.id": self.batch_id}
        for item in self.items:
            batch = timed_span("batch", item.context, self.start_ns, end_ns, **attributes)
            parent = trace.set_span_in_context(batch, item.context)
            timed_span("inference", parent, *self.inference_ns, **attributes)
        return time.perf_counter() - self.start_s
