"""The WebSocket transport on a real socket (uvicorn on loopback) with the real tiny.en
backend behind it: heartbeats, and a native connection switching to OpenAI mode."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, WebSocket

from cli.realtime_client import RealtimeClient, float_to_pcm16
from engines.manifest import ModelManifest
from engines.whisper.backend import WhisperBackend
from serve.errors import ModelNotFoundError
from serve.local import free_port
from serve.realtime.connection import RealtimeConnection
from serve.realtime.engine import backend_transcriber
from serve.realtime.gate import PartialGate
from serve.realtime.model import SessionModel
from serve.realtime.protocol import SessionConfig
from serve.realtime.settings import RealtimeSettings
from serve.realtime.wire import NativeWire
from tests.realtime.helpers import clip_audio, clip_text, silence, stream_wer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def server(tiny_manifest: ModelManifest, tiny_backend: WhisperBackend) -> AsyncIterator[str]:
    choice = SessionModel(tiny_manifest, backend_transcriber(tiny_backend))

    def resolve(name: str) -> SessionModel:
        if name != choice.name:
            raise ModelNotFoundError(name)
        return choice

    app = FastAPI()
    gate = PartialGate(2)

    @app.websocket("/v1/realtime")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        connection = RealtimeConnection(
            websocket,
            model=choice,
            resolve=resolve,
            settings=RealtimeSettings(ping_interval_s=0.3),
            protocol=NativeWire(),
            config=SessionConfig(),
            partial_gate=gate,
        )
        await connection.serve()

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield f"ws://127.0.0.1:{port}/v1/realtime"
    server.should_exit = True
    await task


async def test_server_pings_while_the_client_is_quiet(server: str) -> None:
    async with RealtimeClient(server) as client:
        await client.wait_for("session.created")
        await client.stream(silence(0.5), speed=8.0)
        first = await client.wait_for("session.ping", timeout=5)
        second = await client.wait_for("session.ping", timeout=5, count=2)
        await client.close_session()
    assert first["timestamp_ms"] == second["timestamp_ms"] == 500


async def test_cancel_closes_without_a_final(server: str) -> None:
    audio = np.concatenate([silence(0.3), clip_audio("jfk.wav")[:32_000]])
    async with RealtimeClient(server) as client:
        await client.wait_for("session.created")
        await client.stream(audio, speed=8.0)
        await client.wait_for("vad.speech_start")
        await client.send_json({"type": "session.cancel"})
        closed = await client.wait_for("session.closed")
    assert closed["reason"] == "cancelled" and closed["segments_transcribed"] == 0
    assert "transcript.final" not in [e["type"] for e in client.record.events]


async def test_openai_clear_forgets_uncommitted_audio(server: str) -> None:
    url = server
    speech = np.concatenate([silence(0.2), clip_audio("7902-96591-0000.wav")])
    pcm24 = np.interp(np.arange(0, len(speech), 2 / 3), np.arange(len(speech)), speech)
    async with RealtimeClient(url) as client:
        await client.wait_for("session.created")
        await client.send_json(
            {
                "type": "session.update",
                "session": {"type": "transcription", "audio": {"input": {"turn_detection": None}}},
            }
        )
        await client.wait_for("session.updated")
        chunk = base64.b64encode(float_to_pcm16(pcm24)).decode()
        await client.send_json({"type": "input_audio_buffer.append", "audio": chunk})
        await client.send_json({"type": "input_audio_buffer.clear", "event_id": "c1"})
        await client.wait_for("input_audio_buffer.cleared")
        await client.send_json({"type": "input_audio_buffer.commit", "event_id": "c2"})
        error = await client.wait_for("error")
        await client.send_json({"type": "input_audio_buffer.append", "audio": chunk})
        await client.send_json({"type": "input_audio_buffer.commit"})
        completed = await client.wait_for(
            "conversation.item.input_audio_transcription.completed", timeout=60
        )
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"
    assert error["error"]["event_id"] == "c2"
    assert stream_wer(clip_text("7902-96591-0000.wav"), completed["transcript"]) <= 0.15
    kinds = [e["type"] for e in client.record.events]
    assert kinds.count("conversation.item.input_audio_transcription.completed") == 1


async def test_native_connection_switches_to_openai_mode(server: str) -> None:
    name = "7902-96591-0000.wav"
    audio = np.concatenate([silence(0.3), clip_audio(name), silence(1.0)])
    async with RealtimeClient(server) as client:
        assert (await client.wait_for("session.created"))["type"] == "session.created"
        await client.send_json(
            {
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}},
                },
            }
        )
        updated = await client.wait_for("session.updated")
        assert updated["session"]["type"] == "transcription"
        await client.send_raw(b"\x00\x00")
        error = await client.wait_for("error")
        assert error["error"]["code"] == "invalid_frame"
        pcm24 = np.interp(np.arange(0, len(audio), 2 / 3), np.arange(len(audio)), audio)
        for i in range(0, len(pcm24), 4800):
            chunk = base64.b64encode(float_to_pcm16(pcm24[i : i + 4800])).decode()
            await client.send_json({"type": "input_audio_buffer.append", "audio": chunk})
        completed = await client.wait_for(
            "conversation.item.input_audio_transcription.completed", timeout=60
        )
    assert stream_wer(clip_text(name), completed["transcript"]) <= 0.15
