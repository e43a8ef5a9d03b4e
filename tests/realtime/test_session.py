"""The session engine in-process on the real tiny.en backend and real audio."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from engines.base import Audio, TranscribeOptions, TranscriptionResult
from engines.manifest import ModelManifest
from engines.whisper.backend import WhisperBackend
from serve.realtime.engine import Transcriber, backend_transcriber
from serve.realtime.events import FramesDropped, SegmentDone, SessionEnded
from serve.realtime.machine import SessionState
from serve.realtime.protocol import SessionConfig
from serve.realtime.settings import RealtimeSettings
from tests.realtime.harness import feed, make_session, run
from tests.realtime.helpers import (
    ENGLISH,
    assert_monotonic,
    assert_partials_prefix_finals,
    assert_vad_order,
    clip_audio,
    clip_text,
    collapse,
    core,
    finals,
    silence,
    stream_wer,
    types,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def transcribe(tiny_backend: WhisperBackend) -> Transcriber:
    return backend_transcriber(tiny_backend)


async def test_stream_of_clips_at_4x(tiny_manifest: ModelManifest, transcribe: Transcriber) -> None:
    parts: list[Audio] = [silence(0.5)]
    for name in ENGLISH:
        parts += [clip_audio(name), silence(1.5)]
    session, recorder = make_session(tiny_manifest, transcribe)
    await run(session, np.concatenate(parts), speed=4.0)
    events = recorder.events
    sequence = collapse(core(events))
    assert sequence[0] == "vad.speech_start" and sequence[-1] == "session.closed"
    # every utterance: start, partials (optional at 4x), end; its final after its end (the
    # next utterance may start before it: VAD events never wait for a decode)
    assert_vad_order(events)
    texts = " ".join(e["text"] for e in finals(events))
    reference = " ".join(clip_text(name) for name in ENGLISH)
    assert stream_wer(reference, texts) <= 0.15, texts
    assert [e["segment_id"] for e in finals(events)] == list(range(len(finals(events))))
    assert_partials_prefix_finals(events)
    assert_monotonic(events)
    assert "session.rate_limit" in types(events)
    closed = events[-1]
    assert closed["reason"] == "client_request"
    assert closed["segments_transcribed"] == len(finals(events))
    assert closed["total_duration_ms"] == pytest.approx(sum(len(p) for p in parts) / 16, abs=1)


async def test_two_utterances_two_finals(
    tiny_manifest: ModelManifest, transcribe: Transcriber
) -> None:
    first, second = "7902-96591-0000.wav", "6930-75918-0000.wav"
    audio = np.concatenate(
        [silence(0.3), clip_audio(first), silence(1.5), clip_audio(second), silence(1.0)]
    )
    session, recorder = make_session(tiny_manifest, transcribe)
    await run(session, audio)
    got = finals(recorder.events)
    assert [e["segment_id"] for e in got] == [0, 1]
    assert stream_wer(clip_text(first), got[0]["text"]) <= 0.15
    assert stream_wer(clip_text(second), got[1]["text"]) <= 0.15
    assert got[0]["end_ms"] <= 300 + len(clip_audio(first)) // 16 + 300 < got[1]["start_ms"]


@pytest.mark.parametrize("kind", ["silence", "noise"])
async def test_no_transcript_without_speech(
    tiny_manifest: ModelManifest, transcribe: Transcriber, kind: str
) -> None:
    rng = np.random.default_rng(11)
    audio = silence(4.0) if kind == "silence" else rng.normal(0, 0.05, 64_000).astype(np.float32)
    session, recorder = make_session(tiny_manifest, transcribe)
    await run(session, audio)
    assert core(recorder.events) == ["session.closed"]


async def test_commit_forces_a_final_mid_utterance(
    tiny_manifest: ModelManifest, transcribe: Transcriber
) -> None:
    audio = np.concatenate([silence(0.3), clip_audio("jfk.wav")[: 16_000 * 2], silence(0.2)])
    session, recorder = make_session(
        tiny_manifest, transcribe, SessionConfig(silence_timeout_ms=2000)
    )
    worker = asyncio.create_task(session.run())
    await feed(session, audio, speed=None)
    assert session.commit()
    committed_ms = len(audio) // 16
    await feed(session, silence(2.5), speed=None)
    await session.close("client_request")
    await worker
    got = finals(recorder.events)
    assert len(got) == 1 and got[0]["segment_id"] == 0
    assert "fellow" in got[0]["text"].lower()
    assert got[0]["end_ms"] <= committed_ms
    # the commit ended the segment, not the VAD: speech_end comes when VAD sees it, after
    ends = [e for e in recorder.events if e["type"] == "vad.speech_end"]
    assert len(ends) == 1 and ends[0]["timestamp_ms"] > committed_ms
    assert not session.commit(), "nothing left to commit"


async def test_backlog_beyond_the_ring_drops_frames_and_memory_stays_bounded(
    tiny_manifest: ModelManifest, transcribe: Transcriber
) -> None:
    speech = np.concatenate([clip_audio("jfk.wav")] * 3)
    session, recorder = make_session(
        tiny_manifest, transcribe, settings=RealtimeSettings(ring_buffer_s=5.0)
    )
    ring_bytes = session.ring._data.nbytes
    worker = asyncio.create_task(session.run())
    for i in range(0, len(speech), 1600):  # no await that yields: the worker cannot drain
        await session.feed(speech[i : i + 1600])
    assert any(isinstance(e, FramesDropped) for e in recorder.raw), "reported while it happens"
    assert session.ring._data.nbytes == ring_bytes and session.ring.used <= session.ring.capacity
    await session.close("client_request")
    await worker
    reported = sum(e.dropped_ms for e in recorder.raw if isinstance(e, FramesDropped))
    assert reported == pytest.approx(session.drops.total_ms, abs=2)
    assert reported >= 1000 * (len(speech) / 16_000 - 5.0) - 600
    assert [e.segment_id for e in recorder.raw if isinstance(e, SegmentDone) and e.final], "finals"


class FlakyEngine:
    """The real engine behind a switch that makes final decodes fail, like a dead replica."""

    def __init__(self, transcribe: Transcriber, failures: int) -> None:
        self.transcribe = transcribe
        self.failures = failures
        self.final_calls = 0

    async def __call__(self, audio: Audio, options: TranscribeOptions) -> TranscriptionResult:
        if options.word_timestamps:
            self.final_calls += 1
            if self.failures:
                self.failures -= 1
                raise RuntimeError("replica died")
        return await self.transcribe(audio, options)


async def test_failed_final_is_retried_from_the_ring(
    tiny_manifest: ModelManifest, transcribe: Transcriber
) -> None:
    engine = FlakyEngine(transcribe, failures=2)
    name = "7902-96591-0000.wav"
    session, recorder = make_session(tiny_manifest, engine)
    await run(session, np.concatenate([silence(0.3), clip_audio(name), silence(1.0)]))
    got = finals(recorder.events)
    assert len(got) == 1 and got[0]["segment_id"] == 0
    assert stream_wer(clip_text(name), got[0]["text"]) <= 0.15
    assert "error" not in types(recorder.events)
    assert engine.final_calls >= 3


async def test_retry_failure_is_recoverable_and_the_audio_is_kept(
    tiny_manifest: ModelManifest, transcribe: Transcriber
) -> None:
    engine = FlakyEngine(transcribe, failures=10**6)
    first, second = "7902-96591-0000.wav", "6930-75918-0000.wav"
    session, recorder = make_session(
        tiny_manifest, engine, settings=RealtimeSettings(retry_window_s=0.5)
    )
    worker = asyncio.create_task(session.run())
    await feed(session, np.concatenate([silence(0.3), clip_audio(first), silence(1.0)]), None)
    while "error" not in types(recorder.events):
        await asyncio.sleep(0.05)
    engine.failures = 0  # the replica is back
    await feed(session, np.concatenate([clip_audio(second), silence(1.0)]), None)
    await session.close("client_request")
    await worker
    events = recorder.events
    error = next(e for e in events if e["type"] == "error")
    assert error["recoverable"] is True and error["code"] == "engine_unavailable"
    got = finals(events)
    assert [e["segment_id"] for e in got] == [0]
    both = f"{clip_text(first)} {clip_text(second)}"
    assert stream_wer(both, got[0]["text"]) <= 0.2, got[0]["text"]


async def test_hold_then_inactivity_closes(
    tiny_manifest: ModelManifest, transcribe: Transcriber
) -> None:
    config = SessionConfig(hold_timeout_ms=500, inactivity_timeout_ms=400)
    session, recorder = make_session(tiny_manifest, transcribe, config)
    worker = asyncio.create_task(session.run())
    await feed(session, silence(1.2), speed=None)
    await asyncio.wait_for(worker, 10)
    events = [e for e in recorder.events if e["type"] != "session.rate_limit"]
    assert types(events) == ["session.hold", "session.closed"]
    assert events[0] == {"type": "session.hold", "timestamp_ms": 512, "hold_timeout_ms": 500}
    assert events[1]["reason"] == "inactivity_timeout"
    assert session.state is SessionState.CLOSED


async def test_cancel_drops_the_open_utterance(
    tiny_manifest: ModelManifest, transcribe: Transcriber
) -> None:
    session, recorder = make_session(tiny_manifest, transcribe)
    worker = asyncio.create_task(session.run())
    await feed(session, np.concatenate([silence(0.3), clip_audio("jfk.wav")[:32_000]]), None)
    await session.close("cancelled")
    await worker
    assert "transcript.final" not in types(recorder.events)
    ended = recorder.raw[-1]
    assert isinstance(ended, SessionEnded) and ended.reason == "cancelled"


async def test_resampled_input_rates(tiny_manifest: ModelManifest, transcribe: Transcriber) -> None:
    import av

    for rate, name in (
        (8000, "jfk.wav"),
        (24_000, "6930-75918-0000.wav"),
        (48_000, "7902-96591-0000.wav"),
    ):
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        frame = av.AudioFrame.from_ndarray(clip_audio(name)[None, :], format="flt", layout="mono")
        frame.sample_rate = 16_000
        audio = np.concatenate([f.to_ndarray()[0] for f in resampler.resample(frame)])
        session, recorder = make_session(
            tiny_manifest, transcribe, SessionConfig(input_sample_rate=rate)
        )
        worker = asyncio.create_task(session.run())
        padded = np.concatenate([np.zeros(rate // 2), audio, np.zeros(rate)]).astype(np.float32)
        for i in range(0, len(padded), rate // 10):
            await session.feed_audio(padded[i : i + rate // 10], rate)
        await session.close("client_request")
        await worker
        text = " ".join(e["text"] for e in finals(recorder.events))
        assert stream_wer(clip_text(name), text) <= 0.15, (rate, text)


async def test_hot_words_reach_the_model_through_the_prompt(
    tiny_manifest: ModelManifest, transcribe: Transcriber
) -> None:
    assert not tiny_manifest.capabilities.hot_words and tiny_manifest.capabilities.initial_prompt
    audio = np.concatenate([silence(0.3), clip_audio("6930-75918-0000.wav"), silence(1.0)])
    texts = []
    for hot_words in ([], ["Konkord"]):
        session, recorder = make_session(
            tiny_manifest, transcribe, SessionConfig(hot_words=hot_words)
        )
        await run(session, audio)
        texts.append(finals(recorder.events)[0]["text"])
    assert "Konkord" not in texts[0] and texts[1].startswith("Konkord"), texts


def test_itn_applies_to_finals_when_enabled(
    tiny_manifest: ModelManifest, transcribe: Transcriber
) -> None:
    from serve.realtime.events import FinalTranscript

    final = FinalTranscript("I counted twenty three boats", 0, 1000, "en", 0.9)
    on, _ = make_session(tiny_manifest, transcribe, SessionConfig(enable_itn=True))
    off, _ = make_session(tiny_manifest, transcribe, SessionConfig(enable_itn=False))
    processed = on._post_process(final)
    assert processed is not None and processed.text == "I counted 23 boats"
    assert off._post_process(final) is final


async def test_long_speech_is_finalised_in_pieces(
    tiny_manifest: ModelManifest, transcribe: Transcriber
) -> None:
    config = SessionConfig(silence_timeout_ms=2000, max_segment_duration_ms=4000)
    session, recorder = make_session(tiny_manifest, transcribe, config)
    await run(session, np.concatenate([silence(0.3), clip_audio("jfk.wav"), silence(2.5)]))
    events = recorder.events
    got = finals(events)
    assert len(got) >= 3 and [e["segment_id"] for e in got] == list(range(len(got)))
    assert all(e["end_ms"] - e["start_ms"] <= 4000 for e in got)
    assert types(events).count("vad.speech_start") == types(events).count("vad.speech_end") == 1
    text = " ".join(e["text"] for e in got)
    assert stream_wer(clip_text("jfk.wav"), text) <= 0.25, text
