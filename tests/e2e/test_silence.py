"""Silence gives no transcript: REST with `vad_filter` on (the default), and `/v1/realtime` in
both protocols, with server VAD and with client commits. (The bare engine, given silence
without VAD, says "You" with whisper-tiny.en and loops with whisper-base.)"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import pytest

from cli.realtime_client import RealtimeClient, float_to_pcm16, realtime_url
from tests.conftest import API_KEY
from tests.e2e.test_rest import wav_bytes
from tests.realtime.helpers import core, finals, silence

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
MODELS = ["whisper-tiny.en", "whisper-base"]
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def quiet(seconds: float) -> np.ndarray:
    """Digital silence with a -70 dBFS noise floor, like an idle microphone."""
    rng = np.random.default_rng(5)
    return (rng.normal(0, 10 ** (-70 / 20), round(seconds * 16_000))).astype(np.float32)


@pytest.mark.parametrize("model", MODELS)
def test_rest_silence_is_an_empty_transcript(serve_url: str, model: str) -> None:
    for audio in (silence(10.0), quiet(10.0)):
        r = httpx.post(
            f"{serve_url}/v1/audio/transcriptions",
            headers=HEADERS,
            data={"model": model, "response_format": "verbose_json"},
            files={"file": ("silence.wav", wav_bytes(audio))},
            timeout=300,
        )
        body = r.json()
        assert r.status_code == 200, body
        assert body["text"] == "" and body["segments"] == []
        assert body["duration"] == pytest.approx(10.0)


@pytest.mark.parametrize("model", MODELS)
async def test_realtime_silence_with_server_vad_has_no_transcript(
    serve_url: str, model: str
) -> None:
    url = realtime_url(serve_url, model=model)
    async with RealtimeClient(url, HEADERS) as client:
        await client.wait_for("session.created")
        await client.stream(np.concatenate([silence(3.0), quiet(3.0)]), speed=8.0)
        closed = await client.close_session()
    assert core(client.record.events) == ["session.created", "session.closed"]
    assert closed["segments_transcribed"] == 0


@pytest.mark.parametrize("model", MODELS)
async def test_realtime_committed_silence_has_no_transcript(serve_url: str, model: str) -> None:
    """No server VAD: the client commits 10 s of silence; the engine's VAD finds no speech."""
    url = realtime_url(serve_url, model=model)
    async with RealtimeClient(url, HEADERS) as client:
        await client.wait_for("session.created")
        await client.send_json({"type": "session.configure", "vad_enabled": False})
        await client.stream(silence(10.0), speed=20.0)
        await client.send_json({"type": "input_audio_buffer.commit"})
        closed = await client.close_session()
    events = client.record.events
    assert not finals(events), finals(events)
    assert not [e for e in events if e["type"] == "error"]
    assert closed["segments_transcribed"] == 0


async def test_openai_mode_committed_silence_is_an_empty_item(serve_url: str) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{serve_url}/v1", api_key=API_KEY, max_retries=0)
    received: list[Any] = []
    async with client.realtime.connect(
        model="whisper-base", extra_query={"intent": "transcription"}
    ) as connection:
        await connection.session.update(
            session={
                "type": "transcription",
                "audio": {"input": {"turn_detection": None}},
            }
        )
        audio = np.zeros(10 * 24_000, dtype=np.float32)  # 24 kHz PCM, OpenAI's rate
        for i in range(0, len(audio), 24_000):
            chunk = base64.b64encode(float_to_pcm16(audio[i : i + 24_000])).decode()
            await connection.input_audio_buffer.append(audio=chunk)
        await connection.input_audio_buffer.commit()
        async for event in connection:
            received.append(event)
            kind = event.type
            if kind.startswith("conversation.item.input_audio_transcription.") and kind.endswith(
                (".completed", ".failed")
            ):
                break
    kinds = [e.type for e in received]
    assert "error" not in kinds, received
    assert kinds[-1] == "conversation.item.input_audio_transcription.completed"
    assert received[-1].transcript == ""
