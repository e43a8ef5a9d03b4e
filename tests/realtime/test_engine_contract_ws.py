"""The realtime protocol is one contract for every registered engine (parametrized over the
registry, each on its model in `tests.conftest.CONTRACT_MODELS`): `model=whisper-…` or
`model=wenet-…` gives the same event sequence, fields and types, in native and OpenAI mode.
Natively streaming models send partials chunk by chunk; a killed streaming replica is
recovered."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from cli.realtime_client import RealtimeClient, realtime_url
from tests.conftest import API_KEY, WENET_MODEL
from tests.realtime.helpers import (
    assert_monotonic,
    assert_partials_prefix_finals,
    assert_vad_order,
    clip_audio,
    finals,
    openai_sdk_transcription,
    silence,
    stream_wer,
    types,
)
from tests.realtime.test_ws_e2e import engine_replica_names, resample

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
JFK_TEXT = (
    "and so my fellow americans ask not what your country can do for you "
    "ask what you can do for your country"
)
FINAL_FIELDS = {
    "type",
    "text",
    "segment_id",
    "start_ms",
    "end_ms",
    "language",
    "confidence",
    "words",
}


ONE_UTTERANCE = {"type": "session.configure", "silence_timeout_ms": 2000}
"""JFK pauses for ~1.2 s twice; the playback test model restarts its text at every new
stream (its position lives in the encoder cache), so tests keep the clip one utterance."""


async def run_session(url: str, audio: np.ndarray, speed: float) -> list[dict[str, Any]]:
    async with RealtimeClient(url, HEADERS) as client:
        await client.wait_for("session.created")
        await client.send_json(ONE_UTTERANCE)
        await client.stream(audio, speed)
        await client.close_session(timeout=120)
    assert client.record.close_code == 1000
    return client.record.events


async def test_native_mode_contract(serve_url: str, contract_model: str) -> None:
    model = contract_model
    audio = np.concatenate([silence(0.5), clip_audio("jfk.wav"), silence(2.5)])
    events = await run_session(realtime_url(serve_url, model=model, language="en"), audio, 2.0)
    kinds = types(events)
    assert kinds[0] == "session.created" and kinds[-1] == "session.closed"
    assert set(events[0]) >= {"type", "session_id", "model", "config"}
    assert events[0]["model"] == model
    got = finals(events)
    assert got, kinds
    assert [e["segment_id"] for e in got] == list(range(len(got)))
    for final in got:
        assert set(final) >= FINAL_FIELDS, set(final)
        assert isinstance(final["text"], str) and isinstance(final["confidence"], float)
        assert 0 <= final["start_ms"] <= final["end_ms"]
        assert all(set(w) == {"word", "start", "end"} for w in final["words"])
    assert kinds.index("vad.speech_start") < kinds.index("transcript.final")
    assert "transcript.partial" in kinds
    # VAD events never wait for a decode: the speech end comes before the final it causes
    assert len(kinds) - kinds[::-1].index("vad.speech_end") < len(kinds) - kinds[::-1].index(
        "transcript.final"
    )
    partials = [e for e in events if e["type"] == "transcript.partial"]
    assert set(partials[0]) >= {"text", "stable", "unstable", "segment_id", "timestamp_ms"}
    assert any(p["unstable"] for p in partials), "the newest hypothesis is sent at once"
    assert any(p["stable"] for p in partials), "confirmed words are marked stable"
    assert stream_wer(JFK_TEXT, " ".join(e["text"] for e in got)) <= 0.15
    assert_partials_prefix_finals(events)
    assert_vad_order(events)
    assert_monotonic(events)
    assert events[-1]["segments_transcribed"] == len(got)


async def test_ctc_partials_arrive_chunk_by_chunk_before_speech_end(
    serve_url: str, wenet_stream_steps: Callable[[], float]
) -> None:
    """Native partials: one per processed engine chunk (640 ms of audio at chunk 16), each
    extending the last, while the speaker is still speaking, before the final."""
    speech_s = 5.0
    audio = np.concatenate(
        [silence(0.3), clip_audio("jfk.wav")[: int(16_000 * speech_s)], silence(2.5)]
    )
    steps_before = await asyncio.to_thread(wenet_stream_steps)
    events = await run_session(
        realtime_url(serve_url, model=WENET_MODEL, language="en"), audio, 1.0
    )
    steps = await asyncio.to_thread(wenet_stream_steps) - steps_before
    # One engine call per decoding step (640 ms of audio), not per 100 ms audio message.
    audio_ms = len(audio) // 16
    assert 4 <= steps <= audio_ms / 640 + 4, (steps, audio_ms)
    kinds = types(events)
    partials = [e for e in events if e["type"] == "transcript.partial"]
    assert len(partials) >= 4, kinds
    assert kinds.index("transcript.partial") < kinds.index("transcript.final")
    texts = [p["text"] for p in partials]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts)), texts
    stable = [p["stable"] for p in partials]
    assert all(b.startswith(a) for a, b in itertools.pairwise(stable)), stable
    assert stable[-1], "the engine's words get confirmed as the stream goes on"
    assert partials[0]["timestamp_ms"] < 300 + 2000, "first partial early in the speech"
    during_speech = [p for p in partials if p["timestamp_ms"] <= 300 + speech_s * 1000]
    assert len(during_speech) >= 3
    assert finals(events)[0]["text"].startswith("and so my fellow americans ask not")


async def test_openai_mode_contract(serve_url: str, contract_model: str) -> None:
    model = contract_model
    audio = resample(np.concatenate([silence(0.3), clip_audio("jfk.wav"), silence(2.5)]), 24_000)
    received = await openai_sdk_transcription(
        serve_url, API_KEY, model, audio, silence_duration_ms=2000, speed=3.0, until_all_sent=True
    )
    completed = [
        e for e in received if e.type == "conversation.item.input_audio_transcription.completed"
    ]
    kinds = [e.type for e in received]
    assert kinds[:2] == ["session.created", "session.updated"] and "error" not in kinds
    assert completed
    for item in completed:
        deltas = [
            e.delta
            for e in received
            if e.type.endswith("transcription.delta") and e.item_id == item.item_id
        ]
        assert "".join(deltas) == item.transcript
    unstable = [getattr(e, "unstable", None) for e in received if e.type.endswith(".delta")]
    assert any(unstable), "deltas carry the newest hypothesis' unconfirmed words"
    stops = [i for i, k in enumerate(kinds) if k == "input_audio_buffer.speech_stopped"]
    done = [i for i, k in enumerate(kinds) if k.endswith("transcription.completed")]
    assert stops and stops[-1] < done[-1], "speech stops before its transcript is done"
    text = " ".join(c.transcript for c in completed)
    assert stream_wer(JFK_TEXT, text) <= 0.15, text


async def test_ctc_replica_killed_mid_session_recovers(serve_url: str, models_dir: Path) -> None:
    import ray

    audio = np.concatenate([silence(0.3), clip_audio("jfk.wav")[: 16_000 * 5], silence(2.5)])
    old = engine_replica_names(models_dir, WENET_MODEL)
    assert old
    url = realtime_url(serve_url, model=WENET_MODEL, language="en")
    try:
        async with RealtimeClient(url, HEADERS) as client:
            await client.wait_for("session.created")
            await client.send_json(ONE_UTTERANCE)
            await client.stream(audio[: 16_000 * 2], speed=1.0)  # mid-utterance
            for name in old:
                ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
            await client.stream(audio[16_000 * 2 :], speed=1.0)
            await client.wait_for("transcript.final", timeout=90)
            await client.close_session(timeout=90)
    finally:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = await asyncio.to_thread(engine_replica_names, models_dir, WENET_MODEL)
            ok = (await asyncio.to_thread(httpx.get, f"{serve_url}/health")).status_code == 200
            if now and not set(now) & set(old) and ok:
                break
            await asyncio.sleep(0.5)
    events = client.record.events
    got = finals(events)
    ids = [e["segment_id"] for e in got]
    assert ids == list(range(len(ids))) and ids, "no duplicated or skipped segment ids"
    assert "error" not in types(events), "the retry on the new replica succeeded"
    words = " ".join(e["text"] for e in got).split()
    assert words[:5] == ["and", "so", "my", "fellow", "americans"]
    assert_partials_prefix_finals(events)
