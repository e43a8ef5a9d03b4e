"""Metric families recorded twice: into a process-local `prometheus_client` registry (the
gateway's `/metrics` merges those) and, inside a Ray worker, into Ray's own metrics export
(`ray.util.metrics`), which every Ray node serves on its metrics port for cluster scraping.

Ray prefixes exported names with `ray_` (`theo_requests_total` becomes
`ray_theo_requests_total`); the chart's PodMonitor strips that prefix again, so dashboards
read `theo_*` either way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

logger = logging.getLogger(__name__)


def _ray_metrics() -> Any | None:
    """`ray.util.metrics` when this process is a connected Ray worker or driver, else None."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a core dependency
        return None
    if not ray.is_initialized():
        return None
    from ray.util import metrics

    return metrics


class _Family:
    def __init__(self, name: str, labels: Sequence[str], mirror: bool) -> None:
        self.name = name
        self.label_names = tuple(labels)
        self._mirror_enabled = mirror
        self._ray: Any = None
        self._ray_checked = False

    def _tags(self, values: Sequence[str]) -> dict[str, str]:
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {tuple(values)}")
        return dict(zip(self.label_names, (str(v) for v in values), strict=True))

    def _ray_metric(self) -> Any:
        """The Ray mirror, created on first use (Ray may connect after construction)."""
        if not self._ray_checked and self._mirror_enabled:
            metrics = _ray_metrics()
            if metrics is not None:
                self._ray = self._make_ray(metrics)
                self._ray_checked = True
        return self._ray

    def _make_ray(self, metrics: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _mirror(self, record: Callable[[Any], None]) -> None:
        """Record into the Ray mirror; a failure there is logged, never raised: bookkeeping
        must not replace the answer of the request it describes."""
        try:
            ray_metric = self._ray_metric()
            if ray_metric is not None:
                record(ray_metric)
        except Exception as exc:
            logger.warning("metric %s: Ray export failed: %r", self.name, exc)


class CounterChild:
    def __init__(self, family: CounterFamily, values: Sequence[str]) -> None:
        self._prom = family.prom.labels(*values)
        self._family = family
        self._tags = family._tags(values)

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self._prom.inc(amount)
        if amount > 0:
            self._family._mirror(lambda metric: metric.inc(amount, tags=self._tags))


class CounterFamily(_Family):
    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        registry: CollectorRegistry,
        *,
        mirror: bool = True,
    ) -> None:
        super().__init__(name, labels, mirror)
        self.documentation = documentation
        self.prom = PromCounter(name, documentation, list(labels), registry=registry)

    def _make_ray(self, metrics: Any) -> Any:
        return metrics.Counter(self.name, self.documentation, tag_keys=self.label_names)

    def labels(self, *values: str) -> CounterChild:
        return CounterChild(self, values)


class GaugeChild:
    def __init__(self, family: GaugeFamily, values: Sequence[str]) -> None:
        self._prom = family.prom.labels(*values)
        self._family = family
        self._tags = family._tags(values)
        self._key = tuple(self._tags.values())

    def inc(self, amount: float = 1.0) -> None:
        self._family._apply(self, amount, relative=True)

    def dec(self, amount: float = 1.0) -> None:
        self._family._apply(self, -amount, relative=True)

    def set(self, value: float) -> None:
        self._family._apply(self, value, relative=False)


class GaugeFamily(_Family):
    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        registry: CollectorRegistry,
        *,
        mirror: bool = True,
    ) -> None:
        super().__init__(name, labels, mirror)
        self.documentation = documentation
        self.prom = PromGauge(name, documentation, list(labels), registry=registry)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def _make_ray(self, metrics: Any) -> Any:
        return metrics.Gauge(self.name, self.documentation, tag_keys=self.label_names)

    def _apply(self, child: GaugeChild, value: float, *, relative: bool) -> None:
        with self._lock:
            current = self._values.get(child._key, 0.0)
            new = current + value if relative else value
            self._values[child._key] = new
            child._prom.set(new)
            self._mirror(lambda metric: metric.set(new, tags=child._tags))

    def labels(self, *values: str) -> GaugeChild:
        return GaugeChild(self, values)


class HistogramChild:
    def __init__(self, family: HistogramFamily, values: Sequence[str]) -> None:
        self._prom = family.prom.labels(*values)
        self._family = family
        self._tags = family._tags(values)

    def observe(self, value: float) -> None:
        self._prom.observe(value)
        self._family._mirror(lambda metric: metric.observe(value, tags=self._tags))


class HistogramFamily(_Family):
    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        registry: CollectorRegistry,
        *,
        buckets: Sequence[float],
        mirror: bool = True,
    ) -> None:
        super().__init__(name, labels, mirror)
        self.documentation = documentation
        self.buckets = tuple(float(b) for b in buckets)
        self.prom = PromHistogram(
            name, documentation, list(labels), buckets=self.buckets, registry=registry
        )

    def _make_ray(self, metrics: Any) -> Any:
        return metrics.Histogram(
            self.name,
            self.documentation,
            boundaries=list(self.buckets),
            tag_keys=self.label_names,
        )

    def labels(self, *values: str) -> HistogramChild:
        return HistogramChild(self, values)
