"""The bounds themselves, in process: the gateway's form reading and the proxy's middleware
stop pulling the body at the limit; decoding stops at the duration limit whatever the file
claims; JSON nesting is refused before parsing; the truncation rule per container."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest

from serve.audio import decode_audio_bytes
from serve.errors import AudioTooLongError, InvalidAudioError, TruncatedAudioError
from serve.gateway.upload import FORM_OVERHEAD_BYTES
from serve.proxy import BodyLimitMiddleware
from serve.realtime.protocol import ProtocolError, json_too_deep, load_json_object
from serve.truncation import mp3_declares_length, ogg_truncated, wav_declared_seconds
from tests.hostile.inputs import BOUNDARY, encode, multipart_head, pcm16_wav, wav_header, wav_u8
from tests.realtime.helpers import clip_audio

MIB = 1024 * 1024


class CountingBody:
    """A chunked request body of `chunks` x 1 MiB that counts how much was pulled from it."""

    def __init__(self, chunks: int, head: bytes = b"") -> None:
        self.chunks = chunks
        self.head = head
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.head:
            yield self.head
        for _ in range(self.chunks):
            self.pulled += MIB
            yield b"\0" * MIB


@pytest.fixture
def gateway_app() -> Any:
    """The real gateway FastAPI app with a 2 MB upload limit (the body bound comes before any
    model is looked up, so it serves none)."""
    from serve.gateway.app import api
    from serve.gateway.context import GatewayContext, set_context
    from serve.routing import ModelRouter
    from serve.settings import TheoSettings
    from serve.telemetry.metrics import GatewayMetrics

    set_context(
        GatewayContext(
            settings=TheoSettings(max_upload_mb=2),
            router=ModelRouter([], {}),
            metrics=GatewayMetrics(),
        )
    )
    return api


async def test_gateway_stops_reading_a_chunked_body_at_the_limit(gateway_app: Any) -> None:
    body = CountingBody(64, multipart_head("whisper-tiny.en"))
    transport = httpx.ASGITransport(app=gateway_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://theo") as client:
        r = await client.post(
            "/v1/audio/transcriptions",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "file_too_large"
    assert body.pulled <= 2 * MIB + FORM_OVERHEAD_BYTES + MIB, body.pulled


async def test_gateway_refuses_a_declared_length_without_reading(gateway_app: Any) -> None:
    body = CountingBody(64)
    transport = httpx.ASGITransport(app=gateway_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://theo") as client:
        r = await client.post(
            "/v1/audio/transcriptions",
            content=body,
            headers={
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Content-Length": str(64 * MIB),
            },
        )
    assert r.status_code == 413 and body.pulled == 0


async def test_proxy_middleware_disconnects_the_app_and_answers_413() -> None:
    seen = {"bytes": 0, "disconnected": False}

    async def proxy_app(scope: Any, receive: Any, send: Any) -> None:
        """Stands for Serve's proxy app: forwards the body until the client is gone."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                seen["disconnected"] = True
                return
            seen["bytes"] += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = BodyLimitMiddleware(proxy_app, max_upload_bytes=2 * MIB)
    body = CountingBody(64)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://theo"
    ) as client:
        r = await client.post("/v1/audio/transcriptions", content=body)
    assert r.status_code == 413 and r.headers["connection"] == "close"
    assert r.json()["error"]["code"] == "file_too_large"
    assert seen["disconnected"] and seen["bytes"] <= 2 * MIB + FORM_OVERHEAD_BYTES
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://theo"
    ) as client:
        small = await client.post("/v1/audio/transcriptions", content=b"x" * 1000)
    assert small.status_code == 200 and small.text == "ok"


def test_decoding_stops_at_the_duration_limit_not_at_the_claim() -> None:
    """A WAV holding 1,000 s at 4 kHz decodes, uncapped, to 64 MB of float32; capped at 30 s,
    decoding refuses it with at most a few MB allocated."""
    data = wav_u8(4_000, 1_000)
    tracemalloc.start()
    try:
        with pytest.raises(AudioTooLongError) as refused:
            decode_audio_bytes(data, max_duration_s=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "30 seconds" in refused.value.message and refused.value.status_code == 400
    assert peak < 16 * MIB, peak
    assert len(decode_audio_bytes(data, max_duration_s=1_000)) == 16_000 * 1_000


def test_implausible_sample_rates_are_refused_before_decoding() -> None:
    for rate in (1, 3_999, 400_000):
        with pytest.raises(InvalidAudioError, match="sample rate"):
            decode_audio_bytes(wav_u8(rate, 2))
    assert len(decode_audio_bytes(wav_u8(4_000, 2))) == 32_000


def test_json_nesting_is_refused_before_parsing() -> None:
    assert json_too_deep("[" * 100_000) and json_too_deep("{" * 33)
    assert not json_too_deep('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')
    assert not json_too_deep(json.dumps({"type": "x", "a": [[[[1]]]]}))
    with pytest.raises(ProtocolError) as refused:
        load_json_object("[" * 100_000)
    assert refused.value.code == "invalid_json"


def test_truncation_rule_per_container() -> None:
    audio = clip_audio("jfk.wav")
    whole = {fmt: encode(audio, fmt) for fmt in ("wav", "flac", "mp3", "ogg", "webm")}
    for fmt, data in whole.items():
        assert len(decode_audio_bytes(data)) == pytest.approx(11 * 16_000, rel=0.02), fmt
        with pytest.raises(TruncatedAudioError):
            decode_audio_bytes(data[: len(data) // 2])
    assert ogg_truncated(whole["ogg"][:-10]) and not ogg_truncated(whole["ogg"])
    assert mp3_declares_length(whole["mp3"])
    assert wav_declared_seconds(whole["wav"]) == pytest.approx(11.0)
    # streaming writers' placeholders declare nothing
    assert wav_declared_seconds(wav_header(16_000, 2, 0xFFFFFFFF)) is None
    assert wav_declared_seconds(wav_header(16_000, 2, 0)) is None
    samples = pcm16_wav(np.zeros(16_000, dtype=np.float32))
    assert wav_declared_seconds(samples) == pytest.approx(1.0)


def test_openapi_describes_the_forms_and_every_error() -> None:
    from serve.gateway.app import api
    from serve.gateway.openapi import theo_openapi

    api.openapi_schema = None
    try:
        schema = theo_openapi(api, ["whisper-tiny.en"])
    finally:
        api.openapi_schema = None
    post = schema["paths"]["/v1/audio/transcriptions"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][form.rsplit("/", 1)[1]]
    assert fields["required"] == ["file", "model"]
    assert fields["properties"]["file"]["format"] == "binary"
    assert fields["properties"]["model"]["enum"] == ["whisper-tiny.en"]
    assert {"400", "401", "404", "413", "415", "500", "503", "504"} <= set(post["responses"])
    error = post["responses"]["413"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/ErrorResponse") and post["security"] == [{"bearerAuth": []}]
    assert set(post["responses"]["200"]["content"]) >= {"application/json", "text/vtt"}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            assert "422" not in operation["responses"], path
