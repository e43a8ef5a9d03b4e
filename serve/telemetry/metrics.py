"""Prometheus metrics of the gateway and the engine replicas, and merging them for `/metrics`.

Each process keeps its own registry. Locally the gateway's `/metrics` asks every engine
deployment for its exposition and merges families by name, so one scrape shows all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from serve.telemetry.instruments import CounterFamily, GaugeFamily, HistogramFamily

LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.35,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    4.0,
    6.0,
    10.0,
    15.0,
    20.0,
    30.0,
)
"""Speech latencies: 10 ms (a VAD frame) to 30 s (a whole Whisper window)."""
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
LOAD_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = CounterFamily(
            "theo_requests",
            "HTTP requests by model, route and status.",
            ["model", "route", "status"],
            r,
        )
        self.request_latency = HistogramFamily(
            "theo_request_latency_seconds",
            "Request latency by model, route and status.",
            ["model", "route", "status"],
            r,
            buckets=LATENCY_BUCKETS,
        )
        self.audio_seconds = CounterFamily(
            "theo_audio_seconds",
            "Seconds of audio transcribed (REST requests and realtime sessions), by model and "
            "engine.",
            ["model", "engine"],
            r,
        )
        self.in_flight = GaugeFamily(
            "theo_requests_in_flight",
            "Requests being processed by the gateway, by model.",
            ["model"],
            r,
        )
        self.rate_limited = CounterFamily(
            "theo_rate_limited",
            "Requests refused as overloaded (REST 429) and realtime rate-limit advisories.",
            ["model", "route"],
            r,
        )
        self.realtime = RealtimeMetrics(r)

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()


class RealtimeMetrics:
    """Realtime sessions of one gateway replica."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.sessions_active = GaugeFamily(
            "theo_realtime_sessions_active", "Open realtime sessions by model.", ["model"], r
        )
        self.sessions = CounterFamily(
            "theo_realtime_sessions",
            "Realtime sessions ended, by model and close reason.",
            ["model", "reason"],
            r,
        )
        self.first_partial_latency = HistogramFamily(
            "theo_realtime_first_partial_latency_seconds",
            "From the arrival of a segment's first speech audio to its first partial.",
            ["model"],
            r,
            buckets=LATENCY_BUCKETS,
        )
        self.final_latency = HistogramFamily(
            "theo_realtime_final_latency_seconds",
            "From the arrival of a segment's last audio (speech end) to its final transcript.",
            ["model"],
            r,
            buckets=LATENCY_BUCKETS,
        )
        self.speech_segments = CounterFamily(
            "theo_vad_speech_segments",
            "Speech segments the realtime VAD detected, by model.",
            ["model"],
            r,
        )
        self.dropped_audio = CounterFamily(
            "theo_realtime_dropped_frames_seconds",
            "Seconds of realtime audio dropped because a session's buffer was full.",
            ["model"],
            r,
        )
        self.recoveries = CounterFamily(
            "theo_recoveries",
            "Engine calls that succeeded after failed attempts, and failed segments whose audio "
            "was recovered into the next final.",
            ["model", "kind"],
            r,
        )
        self.segment_failures = CounterFamily(
            "theo_realtime_segment_failures",
            "Realtime segments whose final could not be decoded within the retry window.",
            ["model"],
            r,
        )


class EngineMetrics:
    def __init__(self, model: str, engine: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.model = model
        self.batch_size = HistogramFamily(
            "theo_batch_size",
            "Windows decoded together in one engine batch (dynamic batching achieved).",
            ["model"],
            r,
            buckets=BATCH_BUCKETS,
        ).labels(model)
        self.batch_latency = HistogramFamily(
            "theo_batch_latency_seconds",
            "Time to decode one engine batch.",
            ["model"],
            r,
            buckets=LATENCY_BUCKETS,
        ).labels(model)
        self.batch_wait = HistogramFamily(
            "theo_batch_wait_seconds",
            "Time a window waited in the dynamic-batch queue before its batch started.",
            ["model"],
            r,
            buckets=LATENCY_BUCKETS,
        ).labels(model)
        self.real_time_factor = HistogramFamily(
            "theo_real_time_factor",
            "Processing time divided by audio duration, per engine call, by engine.",
            ["model", "engine"],
            r,
            buckets=RTF_BUCKETS,
        ).labels(model, engine)
        self.queue_depth = GaugeFamily(
            "theo_queue_depth", "Windows waiting for or inside an engine batch.", ["model"], r
        ).labels(model)
        self.model_load = HistogramFamily(
            "theo_model_load_seconds",
            "Time to load a model into an engine replica.",
            ["model", "engine"],
            r,
            buckets=LOAD_BUCKETS,
        ).labels(model, engine)
        self.stream_steps = CounterFamily(
            "theo_engine_stream_steps",
            "Streaming-session calls (audio in, hypotheses out) a replica served.",
            ["model"],
            r,
        ).labels(model)
        self.threads = GaugeFamily(
            "theo_engine_threads",
            "CPU threads the replica's engine kernels run with (the `cpu_threads` setting, "
            "or the CPUs allotted to the replica).",
            ["model", "engine"],
            r,
        ).labels(model, engine)

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
