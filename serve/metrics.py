"""Prometheus metrics of the gateway and the engine replicas, and merging them for `/metrics`.

Each process keeps its own registry. Locally the gateway's `/metrics` asks every engine
deployment for its exposition and merges families by name, so one scrape shows all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "theo_requests",
            "HTTP requests by model, route and status.",
            ["model", "route", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "theo_request_latency_seconds",
            "Request latency by model and route.",
            ["model", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "theo_audio_seconds",
            "Seconds of audio transcribed, by model and engine.",
            ["model", "engine"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "theo_requests_in_flight",
            "Requests being processed by the gateway, by model.",
            ["model"],
            registry=self.registry,
        )

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()


class EngineMetrics:
    def __init__(self, model: str, engine: str) -> None:
        self.registry = CollectorRegistry()
        self.model = model
        self.batch_size = Histogram(
            "theo_batch_size",
            "Windows decoded together in one engine batch (dynamic batching achieved).",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        ).labels(model)
        self.batch_latency = Histogram(
            "theo_batch_latency_seconds",
            "Time to decode one engine batch.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(model)
        self.real_time_factor = Histogram(
            "theo_real_time_factor",
            "Processing time divided by audio duration, per request, by engine.",
            ["model", "engine"],
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
            registry=self.registry,
        ).labels(model, engine)
        self.queue_depth = Gauge(
            "theo_queue_depth",
            "Windows waiting for or inside an engine batch.",
            ["model"],
            registry=self.registry,
        ).labels(model)

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def merge_expositions(texts: Iterable[str]) -> bytes:
    """Merge Prometheus text expositions of several processes, one family per name."""
    merged: dict[str, Metric] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name in merged:
                merged[family.name].samples.extend(family.samples)
            else:
                merged[family.name] = family
    registry = CollectorRegistry()
    registry.register(_Families(merged.values()))
    return generate_latest(registry)
