"""`/v1/realtime` end to end: real WebSocket clients against the real Serve app (gateway +
whisper-tiny.en deployment on a private local Ray), real audio, real model."""

from __future__ import annotations

import asyncio
import base64
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from cli.realtime_client import RealtimeClient, float_to_pcm16, realtime_url
from engines.base import Audio
from engines.manifest import load_manifest
from serve.builder import engine_deployment_name
from tests.conftest import API_KEY
from tests.realtime.helpers import (
    assert_monotonic,
    assert_partials_prefix_finals,
    assert_vad_order,
    clip_audio,
    clip_text,
    collapse,
    core,
    finals,
    openai_sdk_transcription,
    silence,
    stream_wer,
    types,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
MODEL = "whisper-tiny.en"


@pytest.fixture(scope="module")
def ws_url(serve_url: str) -> str:
    return realtime_url(serve_url, model=MODEL, language="en")


@pytest.fixture(scope="module")
def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def utterances(events: list[dict[str, Any]]) -> list[list[str]]:
    """The core sequence split at each speech start, between created and closed."""
    sequence = core(events)
    assert sequence[0] == "session.created" and sequence[-1] == "session.closed", sequence
    groups: list[list[str]] = []
    for kind in sequence[1:-1]:
        if kind == "vad.speech_start":
            groups.append([])
        assert groups, f"{kind} before any speech start"
        groups[-1].append(kind)
    return [collapse(group) for group in groups]


async def stream_clip(
    url: str, headers: dict[str, str], audio: Audio, speed: float
) -> list[dict[str, Any]]:
    async with RealtimeClient(url, headers) as client:
        await client.wait_for("session.created")
        await client.stream(audio, speed)
        await client.close_session()
    assert client.record.close_code == 1000
    return client.record.events


@pytest.mark.parametrize(
    ("name", "speed"),
    [("jfk.wav", 1.0), ("6930-75918-0000.wav", 4.0), ("7902-96591-0000.wav", 4.0)],
)
async def test_clip_event_order_wer_partials_and_times(
    ws_url: str, headers: dict[str, str], name: str, speed: float
) -> None:
    audio = np.concatenate([silence(0.5), clip_audio(name), silence(1.2)])
    events = await stream_clip(ws_url, headers, audio, speed)
    groups = utterances(events)
    assert groups
    assert_vad_order(events)
    if speed == 1.0:
        partials = [e for e in events if e["type"] == "transcript.partial"]
        assert partials, f"partials before finals at real time: {groups}"
        first = partials[0]
        assert first["unstable"] and not first["stable"], "the first decode is shown at once"
        assert any(p["stable"] for p in partials), "words get confirmed"
    else:
        assert "session.rate_limit" in types(events), "4x real time is told to slow down"
    text = " ".join(e["text"] for e in finals(events))
    assert stream_wer(clip_text(name), text) <= 0.15, text
    assert [e["segment_id"] for e in finals(events)] == list(range(len(finals(events))))
    assert_partials_prefix_finals(events)
    assert_monotonic(events)
    created, closed = events[0], events[-1]
    assert created["model"] == MODEL and created["session_id"].startswith("sess_")
    assert closed["reason"] == "client_request"
    assert closed["segments_transcribed"] == len(finals(events))
    assert closed["total_duration_ms"] == pytest.approx(len(audio) / 16, abs=2)


async def test_multilingual_model_streams_portuguese(
    serve_url: str, headers: dict[str, str]
) -> None:
    name = "pangrama.wav"
    url = realtime_url(serve_url, model="whisper-base", language="pt")
    audio = np.concatenate([silence(0.3), clip_audio(name), silence(1.2)])
    events = await stream_clip(url, headers, audio, speed=4.0)
    got = finals(events)
    assert [e["language"] for e in got] == ["pt"]
    assert stream_wer(clip_text(name), got[0]["text"]) <= 0.15, got[0]["text"]


async def test_two_utterances_two_finals_with_consecutive_ids(
    ws_url: str, headers: dict[str, str]
) -> None:
    first, second = "7902-96591-0000.wav", "6930-75918-0000.wav"
    audio = np.concatenate(
        [silence(0.3), clip_audio(first), silence(1.5), clip_audio(second), silence(1.2)]
    )
    events = await stream_clip(ws_url, headers, audio, speed=4.0)
    got = finals(events)
    assert [e["segment_id"] for e in got] == [0, 1]
    assert stream_wer(clip_text(first), got[0]["text"]) <= 0.15
    assert stream_wer(clip_text(second), got[1]["text"]) <= 0.15
    assert len(utterances(events)) == 2


@pytest.mark.parametrize("kind", ["silence", "noise"])
async def test_silence_and_noise_give_no_transcript(
    ws_url: str, headers: dict[str, str], kind: str
) -> None:
    rng = np.random.default_rng(5)
    audio = silence(4.0) if kind == "silence" else rng.normal(0, 0.05, 64_000).astype(np.float32)
    events = await stream_clip(ws_url, headers, audio, speed=4.0)
    assert core(events) == ["session.created", "session.closed"]
    assert events[-1]["segments_transcribed"] == 0


async def test_bad_input_gets_errors_and_the_socket_keeps_working(
    ws_url: str, headers: dict[str, str]
) -> None:
    name = "7902-96591-0000.wav"
    async with RealtimeClient(ws_url, headers) as client:
        await client.wait_for("session.created")
        await client.send_raw(b"\x01\x02\x03")
        await client.send_raw("this is not json")
        await client.send_json({"type": "session.dance"})
        await client.send_json({"type": "session.configure", "silence_timeout_ms": -1})
        await client.send_raw(b"\x00" * (2 * 1024 * 1024))
        await client.send_json({"type": "input_audio_buffer.commit"})
        errors = [await client.wait_for("error", count=n) for n in range(1, 7)]
        assert [e["code"] for e in errors] == [
            "invalid_audio",
            "invalid_json",
            "unknown_command",
            "invalid_value",
            "frame_too_large",
            "input_audio_buffer_commit_empty",
        ]
        assert all(e["recoverable"] for e in errors)
        assert errors[3]["param"] == "silence_timeout_ms"
        await client.stream(np.concatenate([silence(0.3), clip_audio(name), silence(1.2)]), 4.0)
        closed = await client.close_session()
    assert closed["segments_transcribed"] == 1
    assert stream_wer(clip_text(name), finals(client.record.events)[0]["text"]) <= 0.15


async def test_configure_hold_and_inactivity(ws_url: str, headers: dict[str, str]) -> None:
    async with RealtimeClient(ws_url, headers) as client:
        await client.wait_for("session.created")
        await client.send_json(
            {"type": "session.configure", "hold_timeout_ms": 300, "inactivity_timeout_ms": 1000}
        )
        updated = await client.wait_for("session.updated")
        assert updated["config"]["hold_timeout_ms"] == 300
        await client.stream(silence(0.6), speed=4.0)
        hold = await client.wait_for("session.hold")
        assert hold == {"type": "session.hold", "timestamp_ms": 320, "hold_timeout_ms": 300}
        started = time.monotonic()
        closed = await client.wait_for("session.closed", timeout=10)
        waited = time.monotonic() - started
    assert closed["reason"] == "inactivity_timeout"
    assert 0.5 < waited < 5, "closed after ~1 s without a message"
    assert client.record.close_code == 1000


async def test_abrupt_disconnect_frees_the_session(
    serve_url: str, ws_url: str, headers: dict[str, str]
) -> None:
    def open_ids() -> set[str]:
        r = httpx.get(f"{serve_url}/v1/realtime/sessions", headers=headers, timeout=10)
        r.raise_for_status()
        return {s["id"] for s in r.json()["data"]}

    async with RealtimeClient(ws_url, headers) as client:
        created = await client.wait_for("session.created")
        session_id = created["session_id"]
        await client.stream(np.concatenate([silence(0.3), clip_audio("jfk.wav")[:32_000]]), 2.0)
        assert session_id in await asyncio.to_thread(open_ids)
        client.abort()
    deadline = time.monotonic() + 10
    while session_id in await asyncio.to_thread(open_ids):
        assert time.monotonic() < deadline, "session still open 10 s after the disconnect"
        await asyncio.sleep(0.2)


async def test_unknown_model_and_bad_key_close_with_1008(
    serve_url: str, headers: dict[str, str]
) -> None:
    async with RealtimeClient(realtime_url(serve_url, model="no-such-model"), headers) as client:
        error = await client.wait_for("error")
        await asyncio.wait_for(client._reader, 10)  # type: ignore[arg-type]
    assert error["code"] == "model_not_found"
    assert client.record.close_code == 1008 and "no-such-model" in client.record.close_reason

    bad = {"Authorization": "Bearer wrong"}
    async with RealtimeClient(realtime_url(serve_url, model=MODEL), bad) as client:
        assert (await client.wait_for("error"))["code"] == "invalid_api_key"
        await asyncio.wait_for(client._reader, 10)  # type: ignore[arg-type]
    assert client.record.close_code == 1008

    # browsers cannot set headers: the key may come as a query parameter
    url = realtime_url(serve_url, model=MODEL, api_key=API_KEY)
    async with RealtimeClient(url) as client:
        assert (await client.wait_for("session.created"))["model"] == MODEL


def engine_replica_names(models_dir: Path, model: str = MODEL) -> list[str]:
    import ray

    manifest = load_manifest(models_dir / model / "theo.yaml")
    deployment = engine_deployment_name(manifest)
    return [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith("SERVE_REPLICA::") and f"#{deployment}#" in actor["name"]
    ]


def kill_replicas(names: list[str]) -> None:
    import ray

    for name in names:
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)


async def wait_healthy(serve_url: str, models_dir: Path, old: list[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        replicas = await asyncio.to_thread(engine_replica_names, models_dir)
        health = await asyncio.to_thread(httpx.get, f"{serve_url}/health", timeout=10)
        if replicas and not set(replicas) & set(old) and health.status_code == 200:
            return
        await asyncio.sleep(0.5)
    raise AssertionError("the engine replica was not replaced within 120 s")


async def test_engine_replica_killed_mid_utterance(
    serve_url: str, ws_url: str, headers: dict[str, str], models_dir: Path
) -> None:
    name = "6930-75918-0000.wav"
    audio = np.concatenate([silence(0.3), clip_audio(name), silence(1.5)])
    old = engine_replica_names(models_dir)
    assert old
    try:
        async with RealtimeClient(ws_url, headers) as client:
            await client.wait_for("session.created")
            await client.stream(audio[: 16_000 * 2], speed=1.0)  # mid-utterance
            await asyncio.to_thread(kill_replicas, old)
            await client.stream(audio[16_000 * 2 :], speed=1.0)
            await client.wait_for("transcript.final", timeout=90)
            await client.close_session(timeout=90)
    finally:
        await wait_healthy(serve_url, models_dir, old)
    events = client.record.events
    got = finals(events)
    assert [e["segment_id"] for e in got] == [0], "the final arrives once"
    assert stream_wer(clip_text(name), got[0]["text"]) <= 0.15
    assert "error" not in types(events), "the retry succeeded: no error"
    assert_partials_prefix_finals(events)


def resample(audio: Audio, rate: int) -> Audio:
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    frame = av.AudioFrame.from_ndarray(audio[None, :].copy(), format="flt", layout="mono")
    frame.sample_rate = 16_000
    out = [f.to_ndarray()[0] for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(out).astype(np.float32)


async def test_openai_sdk_transcription_mode(serve_url: str) -> None:
    name = "6930-75918-0000.wav"
    audio = resample(np.concatenate([silence(0.3), clip_audio(name), silence(1.5)]), 24_000)
    received = await openai_sdk_transcription(
        serve_url, API_KEY, MODEL, audio, silence_duration_ms=500, speed=2.0, until_all_sent=False
    )
    kinds = [e.type for e in received]
    assert kinds[:2] == ["session.created", "session.updated"]
    assert "error" not in kinds
    delta = "conversation.item.input_audio_transcription.delta"
    assert [k for k in kinds[2:] if k != delta] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
    ]
    completed = received[-1]
    deltas = [e.delta for e in received if e.type.endswith(".delta")]
    assert "".join(deltas) == completed.transcript
    unstable = [getattr(e, "unstable", None) for e in received if e.type.endswith(".delta")]
    assert any(unstable), "partials' unconfirmed words ride along as `unstable`"
    assert stream_wer(clip_text(name), completed.transcript) <= 0.15
    items = {getattr(e, "item_id", None) for e in received[2:]} - {None}
    assert items == {completed.item_id}
    assert received[1].session.audio.input.turn_detection.silence_duration_ms == 500


async def test_openai_mode_g711_manual_commit(serve_url: str, headers: dict[str, str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    name = "jfk.wav"
    ulaw = audioop.lin2ulaw(float_to_pcm16(resample(clip_audio(name), 8000)), 2)
    url = realtime_url(serve_url, model=MODEL, intent="transcription")
    async with RealtimeClient(url, headers) as client:
        assert (await client.wait_for("session.created"))["session"]["type"] == "transcription"
        await client.send_json(
            {
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": None}},
                },
            }
        )
        await client.wait_for("session.updated")
        for i in range(0, len(ulaw), 4000):  # 0.5 s per append, as fast as it goes
            chunk = base64.b64encode(ulaw[i : i + 4000]).decode()
            await client.send_json({"type": "input_audio_buffer.append", "audio": chunk})
        await client.send_json({"type": "input_audio_buffer.commit"})
        completed = await client.wait_for(
            "conversation.item.input_audio_transcription.completed", timeout=60
        )
    kinds = types(client.record.events)
    assert "input_audio_buffer.speech_started" not in kinds, "no server VAD when it is off"
    assert kinds.index("input_audio_buffer.committed") < kinds.index(
        "conversation.item.input_audio_transcription.completed"
    )
    deltas = [
        e["delta"]
        for e in client.record.events
        if e["type"] == "conversation.item.input_audio_transcription.delta"
    ]
    assert "".join(deltas) == completed["transcript"]
    assert stream_wer(clip_text(name), completed["transcript"]) <= 0.15, completed["transcript"]
