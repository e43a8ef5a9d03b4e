"""Helpers of the realtime tests: reference audio as 16 kHz float32 or PCM16, WER with
contractions expanded (Whisper writes "I'm" for "I am"), and event-sequence checks."""

from __future__ import annotations

import asyncio
import base64
import re
from functools import cache
from typing import Any

import numpy as np

from cli.realtime_client import float_to_pcm16
from engines.base import Audio
from serve.audio import decode_audio_bytes
from tests.support import clips, normalize, wer

ENGLISH = ("jfk.wav", "6930-75918-0000.wav", "7902-96591-0000.wav")
CONTRACTIONS = (
    (r"n't\b", " not"),
    (r"'m\b", " am"),
    (r"'re\b", " are"),
    (r"'ll\b", " will"),
    (r"'ve\b", " have"),
)
CORE_EVENTS = (
    "session.created",
    "vad.speech_start",
    "transcript.partial",
    "transcript.final",
    "vad.speech_end",
    "session.closed",
)


@cache
def clip_audio(name: str) -> Audio:
    """A shared clip decoded to 16 kHz mono float32."""
    return decode_audio_bytes(clips()[name].path.read_bytes())


def clip_text(name: str) -> str:
    return clips()[name].transcript


def silence(seconds: float) -> Audio:
    return np.zeros(round(seconds * 16_000), dtype=np.float32)


def pcm16(audio: Audio) -> bytes:
    return float_to_pcm16(audio)


def expand(text: str) -> str:
    text = text.lower().replace("\u2019", "'")
    for pattern, replacement in CONTRACTIONS:
        text = re.sub(pattern, replacement, text)
    return text


def stream_wer(reference: str, hypothesis: str) -> float:
    return wer(expand(reference), expand(hypothesis))


def norm_words(text: str) -> list[str]:
    return normalize(expand(text)).split()


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def core(events: list[dict[str, Any]]) -> list[str]:
    """Event types of the protocol's main sequence (no pings, advice or config acks)."""
    return [t for t in types(events) if t in CORE_EVENTS]


def collapse(sequence: list[str]) -> list[str]:
    """Consecutive repeats merged: partial, partial, partial -> partial."""
    return [t for i, t in enumerate(sequence) if i == 0 or sequence[i - 1] != t]


def finals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "transcript.final"]


def assert_partials_prefix_finals(events: list[dict[str, Any]]) -> None:
    """Every partial is its stable words then its unstable ones; within a segment the stable
    words only grow, and they are a prefix of the segment's final. No partial of a segment
    comes after its final."""
    final_text = {e["segment_id"]: e["text"] for e in finals(events)}
    previous: dict[int, str] = {}
    done: set[int] = set()
    for event in events:
        if event["type"] == "transcript.final":
            done.add(event["segment_id"])
        if event["type"] != "transcript.partial":
            continue
        segment, stable = event["segment_id"], event["stable"]
        assert segment not in done, ("partial after its final", event)
        assert event["text"] == " ".join(p for p in (stable, event["unstable"]) if p), event
        assert stable.startswith(previous.get(segment, "")), (previous.get(segment), stable)
        previous[segment] = stable
        if segment in final_text:
            words = norm_words(stable)
            assert norm_words(final_text[segment])[: len(words)] == words, (
                stable,
                final_text[segment],
            )


def assert_vad_order(events: list[dict[str, Any]]) -> None:
    """Speech starts and ends alternate, start first; every final follows a speech start."""
    vad = [e["type"] for e in events if e["type"] in ("vad.speech_start", "vad.speech_end")]
    assert vad == ["vad.speech_start", "vad.speech_end"] * (len(vad) // 2), vad
    starts = 0
    for event in events:
        starts += event["type"] == "vad.speech_start"
        if event["type"] == "transcript.final":
            assert starts, "a final before any speech start"


def assert_monotonic(events: list[dict[str, Any]]) -> None:
    """Stream positions never go back; finals are ordered and inside their speech."""
    clock = [
        e["timestamp_ms"]
        for e in events
        if e["type"] in ("vad.speech_start", "transcript.partial", "vad.speech_end")
    ]
    assert clock == sorted(clock), clock
    last_end = -1
    for event in events:
        if event["type"] == "transcript.final":
            assert last_end <= event["start_ms"] < event["end_ms"], (last_end, event)
            starts = [w["start"] for w in event["words"]]
            assert starts == sorted(starts)
            last_end = event["end_ms"]
        elif event["type"] == "vad.speech_end":
            assert last_end <= event["timestamp_ms"], (last_end, event)


async def openai_sdk_transcription(
    base_url: str,
    api_key: str,
    model: str,
    audio_24k: Audio,
    *,
    silence_duration_ms: int,
    speed: float,
    until_all_sent: bool,
) -> list[Any]:
    """Stream 24 kHz audio through the official SDK's realtime connection in transcription
    mode (server VAD, English) in 100 ms appends at `speed` x real time. Returns the events
    received until a transcription completes, or with `until_all_sent`, until all audio is
    sent and every utterance the server detected has completed."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0)
    received: list[Any] = []
    async with client.realtime.connect(
        model=model, extra_query={"intent": "transcription"}
    ) as connection:
        await connection.session.update(
            session={
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": model, "language": "en"},
                        "turn_detection": {
                            "type": "server_vad",
                            "silence_duration_ms": silence_duration_ms,
                        },
                    }
                },
            }
        )

        async def send() -> None:
            step = 2400  # 100 ms
            for i in range(0, len(audio_24k), step):
                chunk = base64.b64encode(float_to_pcm16(audio_24k[i : i + step])).decode()
                await connection.input_audio_buffer.append(audio=chunk)
                await asyncio.sleep(0.1 / speed)

        sender = asyncio.create_task(send())
        spoken: set[str] = set()
        completed: set[str] = set()
        while True:
            try:
                event = await asyncio.wait_for(connection.recv(), 0.5)
            except TimeoutError:
                event = None
            if event is not None:
                received.append(event)
                if event.type == "input_audio_buffer.speech_started":
                    spoken.add(event.item_id)
                if event.type == "conversation.item.input_audio_transcription.completed":
                    completed.add(event.item_id)
                    if not until_all_sent:
                        break
            # Everything sent, and every utterance the server heard has its transcript.
            if until_all_sent and sender.done() and completed and spoken <= completed:
                break
        await sender
    return received
