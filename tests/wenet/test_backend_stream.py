"""Streaming: partials chunk by chunk, finals at endpoints, the per-session API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engines.base import StreamSegment, TranscribeOptions
from engines.wenet.backend import WenetBackend
from engines.wenet.testing.audio import bursts
from engines.wenet.testing.generate import GeneratedModel
from tests.wenet.conftest import JFK_TEXT, make_backend

FIRST_CHUNK_SAMPLES = 400 + (67 - 1) * 160  # 67 fbank frames: (16 - 1) * 4 + 6 + 1
CHUNK_SAMPLES = 64 * 160  # 16 encoder frames x 4


def test_a_partial_after_each_chunk_from_the_first(
    jfk_backend: WenetBackend, jfk_audio: np.ndarray
) -> None:
    stream = jfk_backend.open_stream("chunks", TranscribeOptions())
    assert jfk_backend.accept(stream, jfk_audio[: FIRST_CHUNK_SAMPLES - 1]) == []
    first = jfk_backend.accept(stream, jfk_audio[FIRST_CHUNK_SAMPLES - 1 : FIRST_CHUNK_SAMPLES])
    assert len(first) == 1 and not first[0].is_final and first[0].segment_id == 0
    assert first[0].text and JFK_TEXT.startswith(first[0].text)
    partials = first
    position = FIRST_CHUNK_SAMPLES
    while position + CHUNK_SAMPLES <= len(jfk_audio):
        updates = jfk_backend.accept(stream, jfk_audio[position : position + CHUNK_SAMPLES])
        assert len(updates) == 1 and not updates[0].is_final
        partials += updates
        position += CHUNK_SAMPLES
    assert stream.stats.chunks == len(partials) == 17
    final = jfk_backend.finish(stream)
    assert [(f.segment_id, f.is_final, f.text) for f in final] == [(0, True, JFK_TEXT)]
    texts = [p.text for p in partials]
    assert all(JFK_TEXT.startswith(t) for t in texts)  # BPE pieces show as they come: "fel"
    assert [len(t) for t in texts] == sorted(len(t) for t in texts)
    assert texts[len(texts) // 2] != JFK_TEXT  # the text grows while audio arrives
    assert final[0].words[0].word == "And" and final[0].confidence > 0.8
    assert jfk_backend.get_stream("chunks") is None


def test_each_step_says_how_much_audio_the_next_chunk_needs(
    jfk_backend: WenetBackend, jfk_audio: np.ndarray
) -> None:
    """A caller that sends exactly what the engine asks for gets a partial every call: one
    call per encoder chunk, however the audio arrived."""
    stream = jfk_backend.open_stream("needs", TranscribeOptions())
    assert jfk_backend.samples_needed(stream) == FIRST_CHUNK_SAMPLES
    step = jfk_backend.step(stream, jfk_audio[:1000])
    assert step.segments == [] and step.needed_samples == FIRST_CHUNK_SAMPLES - 1000
    position, calls = 1000, 0
    while True:
        needed = step.needed_samples
        assert needed is not None and needed > 0
        if position + needed > len(jfk_audio):
            break
        step = jfk_backend.step(stream, jfk_audio[position : position + needed])
        position += needed
        calls += 1
        assert len(step.segments) == 1, (calls, step)
        assert step.needed_samples == CHUNK_SAMPLES
    assert calls == stream.stats.chunks == 17
    jfk_backend.close_stream(stream)


def test_small_pieces_give_one_partial_per_encoder_chunk(
    jfk_backend: WenetBackend, jfk_audio: np.ndarray
) -> None:
    stream = jfk_backend.open_stream("pieces", TranscribeOptions())
    arrivals: list[tuple[float, StreamSegment]] = []
    piece = 320  # 20 ms
    for start in range(0, len(jfk_audio), piece):
        for update in jfk_backend.accept(stream, jfk_audio[start : start + piece]):
            arrivals.append(((start + piece) / 16000, update))
    assert len(arrivals) == stream.stats.chunks
    assert arrivals[0][0] == pytest.approx(FIRST_CHUNK_SAMPLES / 16000, abs=0.02)
    gaps = np.diff([t for t, _ in arrivals])
    assert np.allclose(gaps, 0.64, atol=0.021)
    assert jfk_backend.finish(stream)[0].text == JFK_TEXT


async def test_transcribe_stream_yields_partials_then_the_final(
    jfk_backend: WenetBackend, jfk_audio: np.ndarray
) -> None:
    async def chunks() -> AsyncIterator[np.ndarray]:
        for start in range(0, len(jfk_audio), 8000):
            yield jfk_audio[start : start + 8000]

    segments = [s async for s in jfk_backend.transcribe_stream(chunks(), TranscribeOptions())]
    assert [s.is_final for s in segments] == [False] * (len(segments) - 1) + [True]
    assert len(segments) > 10
    assert segments[-1].text == JFK_TEXT and segments[-1].language == "en"
    assert jfk_backend.num_streams == 0


async def test_hot_words_in_a_stream(jfk_backend: WenetBackend, jfk_audio: np.ndarray) -> None:
    async def chunks() -> AsyncIterator[np.ndarray]:
        yield jfk_audio

    options = TranscribeOptions(hot_words=("cuntry",))
    segments = [s async for s in jfk_backend.transcribe_stream(chunks(), options)]
    assert segments[-1].text == JFK_TEXT.replace("country", "cuntry", 1)


def feed(
    backend: WenetBackend, audio: np.ndarray, options: TranscribeOptions, piece_s: float = 0.1
) -> tuple[list[tuple[float, StreamSegment]], list[StreamSegment]]:
    stream = backend.open_stream(f"feed-{time.monotonic_ns()}", options)
    piece = int(piece_s * 16000)
    arrivals = []
    for start in range(0, len(audio), piece):
        for update in backend.accept(stream, audio[start : start + piece]):
            arrivals.append(((start + piece) / 16000, update))
    return arrivals, backend.finish(stream)


def test_an_endpoint_after_a_second_of_silence(hello_backend: WenetBackend) -> None:
    audio = bursts([("speech", 0.6), ("silence", 1.5), ("speech", 0.6), ("silence", 0.3)])
    arrivals, rest = feed(hello_backend, audio, TranscribeOptions(word_timestamps=True))
    finals = [(t, u) for t, u in arrivals if u.is_final]
    assert len(finals) == 1
    at, first = finals[0]
    # 1 s of trailing blank after the last unit, detected at the next chunk boundary
    assert 1.4 <= at <= 2.1
    assert (first.segment_id, first.text) == (0, "hello world")
    assert [(u.segment_id, u.text, u.is_final) for u in rest] == [(1, "hello world", True)]
    assert 1.9 < rest[0].start < 2.1
    later = [u for t, u in arrivals if t > at]
    assert later and all(u.segment_id == 1 and not u.is_final for u in later)


def test_long_silence_resets_without_a_final(hello_backend: WenetBackend) -> None:
    audio = bursts([("silence", 6.0), ("speech", 0.5)])
    arrivals, rest = feed(hello_backend, audio, TranscribeOptions())
    assert all(t > 6.0 for t, _ in arrivals)
    assert [(u.segment_id, u.text) for u in rest] == [(0, "hello world")]
    assert rest[0].start > 5.8


def test_empty_partials_when_configured(hello_model: GeneratedModel) -> None:
    backend = make_backend(hello_model, emit_empty_partials=True)
    arrivals, rest = feed(backend, np.zeros(16000 * 2, dtype=np.float32), TranscribeOptions())
    assert len(arrivals) == 3 and all(u.text == "" and not u.is_final for _, u in arrivals)
    assert rest == []


def test_resumed_session_keeps_ids_and_clock(hello_backend: WenetBackend) -> None:
    audio = bursts([("speech", 0.5), ("silence", 0.2)])
    stream = hello_backend.open_stream(
        "resumed", TranscribeOptions(), first_segment_id=7, time_offset=12.0
    )
    updates = hello_backend.accept(stream, audio) + hello_backend.finish(stream)
    assert {u.segment_id for u in updates} == {7}
    assert updates[-1].is_final and 12.0 <= updates[-1].start < 12.2
    assert stream.next_segment_id == 8


def test_session_bookkeeping(hello_backend: WenetBackend) -> None:
    options = TranscribeOptions()
    first = hello_backend.open_stream("a", options)
    assert hello_backend.get_stream("a") is first
    second = hello_backend.open_stream("a", options)  # same id: the old state is dropped
    assert first.closed and hello_backend.get_stream("a") is second
    with pytest.raises(RuntimeError, match="closed"):
        hello_backend.accept(first, np.zeros(160, dtype=np.float32))
    idle = hello_backend.open_stream("idle", options)
    idle.last_active -= 100
    assert hello_backend.close_idle_streams(max_idle_s=60) == ["idle"]
    assert idle.closed and hello_backend.get_stream("idle") is None
    hello_backend.close_stream("a")
    assert second.closed and hello_backend.num_streams == 0
    assert hello_backend.finish(second) == []


def test_concurrent_sessions_share_the_model(
    jfk_backend: WenetBackend, jfk_audio: np.ndarray
) -> None:
    plain = jfk_backend.open_stream("plain", TranscribeOptions())
    biased = jfk_backend.open_stream("biased", TranscribeOptions(hot_words=("cuntry",)))

    def run(stream_id: str) -> str:
        stream = jfk_backend.get_stream(stream_id)
        assert stream is not None
        for start in range(0, len(jfk_audio), 4000):
            jfk_backend.accept(stream, jfk_audio[start : start + 4000])
        return jfk_backend.finish(stream)[-1].text

    with ThreadPoolExecutor(2) as pool:
        texts = list(pool.map(run, [plain.session_id, biased.session_id]))
    assert texts == [JFK_TEXT, JFK_TEXT.replace("country", "cuntry", 1)]
