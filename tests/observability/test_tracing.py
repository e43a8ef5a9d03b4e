"""Traces of real requests, exported by the service's OTLP exporters to an in-memory receiver:
one trace per request, from the gateway's HTTP span through the Ray handle call into the
engine replica (prepare/VAD, queue wait, batch, inference, post-processing)."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.observability.collector import OtlpCollector
from tests.observability.spantree import assert_engine_call, assert_within, child_names, one
from tests.support import clips

pytestmark = pytest.mark.e2e

ROOT = "POST /v1/audio/transcriptions"
ENGINE_SPANS = {"engine.transcribe", "prepare", "vad", "queue_wait", "batch", "inference"}


def transcribe(url: str, headers: dict[str, str], **data: str) -> httpx.Response:
    clip = clips()["jfk.wav"]
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        data={"model": "whisper-tiny.en", **data},
        files={"file": (clip.path.name, clip.path.read_bytes())},
        headers=headers,
        timeout=300,
    )


def test_rest_request_is_one_trace_from_gateway_into_engine(
    serve_url: str, auth_headers: dict[str, str], collector: OtlpCollector
) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    request_id = f"obs-{secrets.token_hex(6)}"
    headers = {
        **auth_headers,
        "traceparent": f"00-{trace_id}-{caller_span}-01",
        "x-request-id": request_id,
    }
    response = transcribe(serve_url, headers, response_format="verbose_json")
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id

    spans = collector.store.wait_for(trace_id, {ROOT, "postprocess", *ENGINE_SPANS})
    root = one(spans, ROOT)
    assert root.parent_id == caller_span, "the caller's traceparent was not continued"
    assert root.service == "theo-gateway"
    assert root.attributes["theo.request_id"] == request_id
    assert {"decode", "engine.call", "postprocess"} <= child_names(spans, root)

    call = one(spans, "engine.call")
    engine = one(spans, "engine.transcribe")
    assert engine.parent_id == call.span_id, "the engine span is not a child of the handle call"
    assert engine.attributes["theo.model"] == "whisper-tiny.en"
    assert_within(engine, call)
    assert_within(call, root)
    assert_engine_call(spans, engine)
    assert {s.trace_id for s in spans} == {trace_id}


def test_streamed_request_traces_the_engine_stream(
    serve_url: str, auth_headers: dict[str, str], collector: OtlpCollector
) -> None:
    trace_id = secrets.token_hex(16)
    headers = {**auth_headers, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    response = transcribe(serve_url, headers, stream="true")
    assert response.status_code == 200 and "transcript.text.done" in response.text
    spans = collector.store.wait_for(trace_id, {ROOT, "engine.transcribe_stream", "inference"})
    engine = one(spans, "engine.transcribe_stream")
    assert one(spans, ROOT).span_id == engine.parent_id
    assert_engine_call(spans, engine)


def test_without_a_caller_context_each_request_starts_its_own_trace(
    serve_url: str, auth_headers: dict[str, str], collector: OtlpCollector
) -> None:
    ids = []
    for _ in range(2):
        request_id = f"obs-{secrets.token_hex(6)}"
        r = transcribe(serve_url, {**auth_headers, "x-request-id": request_id})
        assert r.status_code == 200
        ids.append(request_id)
    roots = []
    for request_id in ids:
        for _ in range(100):
            found = [
                s
                for s in collector.store.spans()
                if s.name == ROOT and s.attributes.get("theo.request_id") == request_id
            ]
            if found:
                break
            import time

            time.sleep(0.2)
        assert len(found) == 1
        roots.append(found[0])
    assert roots[0].trace_id != roots[1].trace_id
    assert all(r.parent_id is None for r in roots)
