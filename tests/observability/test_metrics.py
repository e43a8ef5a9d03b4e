"""`theo_` metrics after real requests to the real service: counts equal what was sent,
latencies and real-time factors are sane, batches hold more than one window under load, and
the same families reach Ray's own metrics export (what a cluster scrapes)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from serve.local import machine_cpus
from tests.observability.promtext import Key, delta, samples, scrape, total, value
from tests.support import clips

pytestmark = pytest.mark.e2e

TINY, BASE = "whisper-tiny.en", "whisper-base"
TRANSCRIPTIONS = "transcriptions"


def post(url: str, headers: dict[str, str], name: str, **data: Any) -> httpx.Response:
    clip = clips()[name]
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        data=data,
        files={"file": (clip.path.name, clip.path.read_bytes())},
        headers=headers,
        timeout=300,
    )


def test_request_counts_latency_audio_and_rtf_match_what_was_sent(
    serve_url: str, auth_headers: dict[str, str]
) -> None:
    before = scrape(serve_url)
    sent = [
        (TINY, "jfk.wav", "json"),
        (TINY, "6930-75918-0000.wav", "text"),
        (TINY, "jfk.wav", "srt"),
        (BASE, "jfk.wav", "verbose_json"),
    ]
    for model, name, fmt in sent:
        r = post(serve_url, auth_headers, name, model=model, response_format=fmt)
        assert r.status_code == 200, r.text
    missing = post(serve_url, auth_headers, "jfk.wav", model="no-such-model")
    assert missing.status_code == 404
    after = scrape(serve_url)

    def requests(model: str, status: str) -> float:
        return delta(
            before, after, "theo_requests_total", model=model, route=TRANSCRIPTIONS, status=status
        )

    assert requests(TINY, "200") == 3
    assert requests(BASE, "200") == 1
    assert requests("unknown", "404") == 1  # labels come only from served models
    assert not any(("model", "no-such-model") in labels for _, labels in after)
    labels = {"route": TRANSCRIPTIONS, "status": "200"}
    tiny_latency = delta(before, after, "theo_request_latency_seconds_count", model=TINY, **labels)
    assert tiny_latency == 3
    latency_sum = delta(before, after, "theo_request_latency_seconds_sum", model=TINY, **labels)
    assert 0.01 < latency_sum / 3 < 60

    durations = {TINY: 0.0, BASE: 0.0}
    for model, name, _ in sent:
        durations[model] += clips()[name].duration
    for model, seconds in durations.items():
        counted = delta(
            before, after, "theo_audio_seconds_total", model=model, engine="faster-whisper"
        )
        assert counted == pytest.approx(seconds, abs=0.05 * len(sent))
        rtf_count = delta(
            before, after, "theo_real_time_factor_count", model=model, engine="faster-whisper"
        )
        rtf_sum = delta(
            before, after, "theo_real_time_factor_sum", model=model, engine="faster-whisper"
        )
        assert rtf_count == sum(1 for m, _, _ in sent if m == model)
        assert 0.0 < rtf_sum / rtf_count < 5.0, "a real-time factor out of any sane range"

    assert value(after, "theo_queue_depth", model=TINY) == 0
    assert value(after, "theo_requests_in_flight", model=TINY) == 0
    assert delta(before, after, "theo_batch_wait_seconds_count", model=TINY) >= 3
    for model in (TINY, BASE):
        assert value(after, "theo_model_load_seconds_count", model=model, engine="faster-whisper")
        load = value(after, "theo_model_load_seconds_sum", model=model, engine="faster-whisper")
        assert 0.0 < load < 300
        # the fixture sets cpu_threads: 2; the replica reports what it runs with
        assert value(after, "theo_engine_threads", model=model, engine="faster-whisper") == 2
    # WeNet is left at cpu_threads 0: on the local run, every CPU of the machine
    threads = value(after, "theo_engine_threads", model="wenet-playback", engine="wenet")
    assert threads == machine_cpus()


def test_concurrent_requests_fill_batches(serve_url: str, auth_headers: dict[str, str]) -> None:
    before = scrape(serve_url)
    with ThreadPoolExecutor(6) as pool:
        responses = list(
            pool.map(lambda _: post(serve_url, auth_headers, "jfk.wav", model=TINY), range(6))
        )
    assert [r.status_code for r in responses] == [200] * 6
    after = scrape(serve_url)
    batches = delta(before, after, "theo_batch_size_count", model=TINY)
    windows = delta(before, after, "theo_batch_size_sum", model=TINY)
    singles = delta(before, after, "theo_batch_size_bucket", model=TINY, le="1.0")
    assert windows >= 6
    assert singles < batches, "every batch held one window: no dynamic batching happened"
    assert windows / batches > 1.0
    waits = delta(before, after, "theo_batch_wait_seconds_count", model=TINY)
    assert waits == windows, "one queue wait per window"
    wait_sum = delta(before, after, "theo_batch_wait_seconds_sum", model=TINY)
    assert 0.0 <= wait_sum / waits < 30


def test_every_documented_family_is_exposed(serve_url: str) -> None:
    text = httpx.get(f"{serve_url}/metrics", timeout=30).text
    names = {name for (name, _) in samples(text)}
    families = [
        "theo_requests_total",
        "theo_request_latency_seconds_bucket",
        "theo_audio_seconds_total",
        "theo_real_time_factor_bucket",
        "theo_batch_size_bucket",
        "theo_batch_wait_seconds_bucket",
        "theo_batch_latency_seconds_bucket",
        "theo_queue_depth",
        "theo_model_load_seconds_bucket",
        "theo_engine_threads",
    ]
    assert set(families) <= names, set(families) - names
    for family in (
        "theo_realtime_sessions_active",
        "theo_realtime_first_partial_latency_seconds",
        "theo_realtime_final_latency_seconds",
        "theo_vad_speech_segments",
        "theo_rate_limited",
        "theo_realtime_dropped_frames_seconds",
        "theo_recoveries",
    ):
        assert re.search(rf"^# HELP {family}(_total)? ", text, re.M), family
    buckets = {
        dict(labels)["le"]
        for (name, labels), _ in samples(text).items()
        if name == "theo_request_latency_seconds_bucket"
    }
    assert {"0.01", "30.0", "+Inf"} <= buckets


def test_theo_families_reach_rays_metrics_export(serve_url: str) -> None:
    """A cluster scrapes each Ray node's metrics port; Theo's families are there too."""
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port
    text = ""
    for _ in range(30):
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        if "ray_theo_batch_size_bucket" in text and "ray_theo_requests_total" in text:
            break
        import time

        time.sleep(1)
    data: dict[Key, float] = samples(text)
    assert total(data, "ray_theo_requests_total", route=TRANSCRIPTIONS) > 0
    assert total(data, "ray_theo_batch_size_count") > 0
