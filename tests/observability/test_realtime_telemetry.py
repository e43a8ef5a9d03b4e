"""One real realtime session (jfk.wav streamed at real time over `/v1/realtime`): the session
metrics count what the client saw, and its trace runs from the gateway's WebSocket span through
each engine call into the engine replica."""

from __future__ import annotations

import asyncio
import secrets

import numpy as np
import pytest

from cli.realtime_client import RealtimeClient, realtime_url
from serve.audio import decode_audio_bytes
from tests.conftest import API_KEY
from tests.observability.collector import OtlpCollector
from tests.observability.promtext import Key, delta, scrape, value
from tests.observability.spantree import assert_engine_call, assert_within, one
from tests.support import clips

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
MODEL = "whisper-tiny.en"
ROOT = "WEBSOCKET /v1/realtime"


async def settled(url: str, before: dict[Key, float]) -> dict[Key, float]:
    """A scrape after the session's close has been counted (it follows `session.closed`)."""
    after = scrape(url)
    for _ in range(50):
        if value(after, "theo_realtime_sessions_active", model=MODEL) == value(
            before, "theo_realtime_sessions_active", model=MODEL
        ) and delta(
            before, after, "theo_realtime_sessions_total", model=MODEL, reason="client_request"
        ):
            break
        await asyncio.sleep(0.1)
        after = scrape(url)
    return after


async def test_session_metrics_and_trace(serve_url: str, collector: OtlpCollector) -> None:
    clip = clips()["jfk.wav"]
    audio = np.concatenate(
        [decode_audio_bytes(clip.path.read_bytes()), np.zeros(16_000, np.float32)]
    )
    trace_id = secrets.token_hex(16)
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
    }
    before = scrape(serve_url)
    async with RealtimeClient(realtime_url(serve_url, model=MODEL, language="en"), headers) as c:
        created = await c.wait_for("session.created")
        await c.stream(audio, speed=1.0)
        closed = await c.close_session()
    after = await settled(serve_url, before)

    record = c.record
    finals = record.of_type("transcript.final")
    starts = record.of_type("vad.speech_start")
    partial_segments = {r.event["segment_id"] for r in record.of_type("transcript.partial")}
    assert finals and starts and partial_segments

    def d(name: str, **labels: str) -> float:
        return delta(before, after, name, model=MODEL, **labels)

    assert d("theo_realtime_sessions_total", reason="client_request") == 1
    assert value(after, "theo_realtime_sessions_active", model=MODEL) == value(
        before, "theo_realtime_sessions_active", model=MODEL
    )
    assert d("theo_vad_speech_segments_total") == len(starts)
    assert d("theo_realtime_final_latency_seconds_count") == len(finals)
    assert d("theo_realtime_first_partial_latency_seconds_count") == len(partial_segments)
    final_mean = d("theo_realtime_final_latency_seconds_sum") / len(finals)
    partial_mean = d("theo_realtime_first_partial_latency_seconds_sum") / len(partial_segments)
    assert 0.0 < final_mean < 10.0 and 0.0 < partial_mean < 10.0
    assert d("theo_audio_seconds_total", engine="faster-whisper") == pytest.approx(
        closed["total_duration_ms"] / 1000, abs=0.01
    )
    assert d("theo_realtime_dropped_frames_seconds_total") == 0

    spans = collector.store.wait_for(
        trace_id, {ROOT, "vad.speech", "engine.transcribe", "inference"}
    )
    root = one(spans, ROOT)
    assert root.service == "theo-gateway"
    assert root.attributes["theo.session_id"] == created["session_id"]
    assert root.attributes["theo.model"] == MODEL
    speech = [s for s in spans if s.name == "vad.speech"]
    assert len(speech) == len(finals)
    calls = [s for s in spans if s.name == "engine.call"]
    engines = [s for s in spans if s.name == "engine.transcribe"]
    assert calls and all(s.parent_id == root.span_id for s in calls + speech)
    call_ids = {s.span_id for s in calls}
    for engine in engines:
        assert engine.parent_id in call_ids
        assert_engine_call(spans, engine)
    for s in calls + speech:
        assert_within(s, root)
    assert {s.trace_id for s in spans} == {trace_id}
