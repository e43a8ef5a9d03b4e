"""Native commands/events and OpenAI transcription-mode events (checked against the SDK)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from openai.types.realtime import realtime_server_event
from pydantic import TypeAdapter

from cli.realtime_client import float_to_pcm16
from engines.base import WordTiming
from serve.realtime.events import (
    FinalTranscript,
    PartialTranscript,
    Problem,
    SegmentClosed,
    SegmentDone,
    SegmentFailed,
    SessionEnded,
    SpeechStarted,
)
from serve.realtime.native import dump, render_native
from serve.realtime.openai_protocol import (
    InputAudioBufferAppend,
    OpenAIRenderer,
    OpenAISessionState,
    SessionUpdate,
    is_transcription_update,
    parse_client_data,
    parse_client_event,
)
from serve.realtime.protocol import (
    SERVER_EVENTS,
    InputAudioBufferCommit,
    ProtocolError,
    SessionConfig,
    SessionConfigure,
    parse_command,
)

SDK_EVENTS: TypeAdapter[Any] = TypeAdapter(realtime_server_event.RealtimeServerEvent)


def test_configure_changes_only_what_it_names() -> None:
    command = parse_command('{"type": "session.configure", "silence_timeout_ms": 800}')
    assert isinstance(command, SessionConfigure)
    config = command.apply(SessionConfig(language="en"))
    assert config.silence_timeout_ms == 800 and config.language == "en"


@pytest.mark.parametrize(
    ("text", "code", "param"),
    [
        ("not json", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ('{"type": "session.dance"}', "unknown_command", "type"),
        ('{"type": "session.configure", "silence_timeout_ms": 5}', "invalid_value", None),
        ('{"type": "session.configure", "input_sample_rate": 44100}', "invalid_value", None),
        ('{"type": "session.configure", "vad_sensitivity": "max"}', "invalid_value", None),
        ('{"type": "session.close", "surprise": 1}', "invalid_value", "surprise"),
    ],
)
def test_bad_commands(text: str, code: str, param: str | None) -> None:
    with pytest.raises(ProtocolError) as info:
        command = parse_command(text)
        if isinstance(command, SessionConfigure):
            command.apply(SessionConfig())
    assert info.value.code == code
    if param is not None:
        assert info.value.param == param


def test_commit_parses() -> None:
    assert isinstance(
        parse_command('{"type": "input_audio_buffer.commit"}'), InputAudioBufferCommit
    )


FINAL = FinalTranscript(
    text="I am from the cutter.",
    start_ms=100,
    end_ms=1900,
    language="en",
    confidence=0.8,
    words=(WordTiming("I", 0.1, 0.2), WordTiming("am", 0.2, 0.4)),
    audio_ms=2000,
)


def test_native_rendering_of_a_segment() -> None:
    events = [
        *render_native(SpeechStarted(600, 100)),
        *render_native(PartialTranscript(0, "", "I", 1000)),
        *render_native(PartialTranscript(0, "I am", "from the", 1500)),
        *render_native(SegmentClosed(2400, 2100)),
        *render_native(SegmentDone(0, FINAL, 2100)),
        *render_native(SegmentClosed(None, 2600)),
        *render_native(SegmentFailed(1, "boom", 3000)),
        *render_native(SessionEnded("client_request", 3000, 1)),
    ]
    dumped = [dump(e) for e in events]
    assert [d["type"] for d in dumped] == [
        "vad.speech_start",
        "transcript.partial",
        "transcript.partial",
        "vad.speech_end",
        "transcript.final",
        "error",
        "session.closed",
    ]
    assert dumped[1] | {} == {
        "type": "transcript.partial",
        "text": "I",
        "stable": "",
        "unstable": "I",
        "segment_id": 0,
        "timestamp_ms": 1000,
    }
    assert (dumped[2]["text"], dumped[2]["stable"], dumped[2]["unstable"]) == (
        "I am from the",
        "I am",
        "from the",
    )
    assert dumped[3]["timestamp_ms"] == 2400, "a commit or split closes without a speech end"
    assert dumped[4]["words"][1] == {"word": "am", "start": 0.2, "end": 0.4}
    assert dumped[5]["recoverable"] is True and dumped[5]["code"] == "engine_unavailable"
    for d in dumped:
        assert SERVER_EVENTS.validate_python(d).type == d["type"]


def test_openai_rendering_deltas_concatenate_and_validate_with_the_sdk() -> None:
    renderer = OpenAIRenderer()
    out = [
        *renderer.render(SpeechStarted(600, 100)),
        *renderer.render(PartialTranscript(0, "", "I", 1000)),
        *renderer.render(PartialTranscript(0, "I am", "from", 1500)),
        *renderer.render(PartialTranscript(0, "I am", "from", 1600)),
        *renderer.render(PartialTranscript(0, "I am from", "", 1800)),
        *renderer.render(SegmentClosed(2400, 2100)),
        *renderer.render(SpeechStarted(3000, 2500)),
        *renderer.render(SegmentDone(0, FINAL, 2100)),
        *renderer.render(PartialTranscript(1, "", "Hm", 3400)),
        *renderer.render(SegmentClosed(3600, 3300)),
        *renderer.render(PartialTranscript(1, "", "", 3600)),
        *renderer.render(SegmentDone(1, None, 3300)),
        *renderer.render(SegmentClosed(None, 5000)),
        *renderer.render(SegmentFailed(1, "engine down", 5000)),
        *renderer.render(Problem("invalid_audio", "bad base64", True, "audio", "evt_1")),
    ]
    kinds = [e["type"] for e in out]
    delta = "conversation.item.input_audio_transcription.delta"
    assert kinds[:9] == [
        "input_audio_buffer.speech_started",
        delta,
        delta,
        delta,
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.speech_started",
        delta,
        "conversation.item.input_audio_transcription.completed",
    ], "speech stops and the item is committed when VAD says so, before its transcript"
    first_item = out[0]["item_id"]
    deltas = [e for e in out[:9] if e["type"] == delta]
    assert [(e["delta"], e.get("unstable")) for e in deltas] == [
        ("", "I"),
        ("I am", " from"),
        (" from", ""),
        (" the cutter.", None),
    ], "stable words as append-only deltas, the unstable tail to show after them"
    assert "".join(e["delta"] for e in deltas) == out[8]["transcript"] == FINAL.text
    assert {e.get("item_id") for e in out[:6]} | {out[8]["item_id"]} == {first_item}
    second = out[6]["item_id"]
    assert second != first_item
    assert [e for e in out if e.get("item_id") == second][-1]["transcript"] == ""
    committed = [e for e in out if e["type"] == "input_audio_buffer.committed"]
    assert committed[1]["previous_item_id"] == first_item
    assert kinds[-2:] == ["conversation.item.input_audio_transcription.failed", "error"]
    assert out[-2]["item_id"] == committed[2]["item_id"]
    for event in out:
        parsed = SDK_EVENTS.validate_python(event)
        assert parsed.type == event["type"]


def test_openai_session_update_maps_to_the_session_config() -> None:
    update = parse_client_event(
        '{"type": "session.update", "session": {"type": "transcription", "audio": {"input": {'
        '"format": {"type": "audio/pcmu"}, "noise_reduction": null,'
        '"transcription": {"model": "whisper-tiny.en", "language": "en", "prompt": "Theo"},'
        '"turn_detection": {"type": "server_vad", "threshold": 0.6,'
        '"prefix_padding_ms": 200, "silence_duration_ms": 700}}}}}'
    )
    assert isinstance(update, SessionUpdate)
    state = OpenAISessionState()
    state.update(update.session)
    config = state.session_config(SessionConfig())
    assert state.sample_rate == 8000
    assert (config.language, config.prompt, config.vad_threshold) == ("en", "Theo", 0.6)
    assert (config.prefix_padding_ms, config.silence_timeout_ms) == (200, 700)
    assert config.vad_enabled and not config.enable_itn
    described = state.describe("sess_1", "whisper-tiny.en", config)
    event = {"type": "session.updated", "event_id": "event_1", "session": described}
    assert SDK_EVENTS.validate_python(event).type == "session.updated"

    no_vad = parse_client_data(
        {
            "type": "session.update",
            "session": {"type": "transcription", "audio": {"input": {"turn_detection": None}}},
        }
    )
    assert isinstance(no_vad, SessionUpdate)
    state.update(no_vad.session)
    assert not state.session_config(config).vad_enabled
    assert state.describe("s", "m", config)["audio"]["input"]["turn_detection"] is None


def test_openai_append_decodes_each_format() -> None:
    tone = (0.25 * np.sin(np.arange(2400) / 5)).astype(np.float32)
    pcm = base64.b64encode(float_to_pcm16(tone)).decode()
    event = parse_client_event(f'{{"type": "input_audio_buffer.append", "audio": "{pcm}"}}')
    assert isinstance(event, InputAudioBufferAppend)
    state = OpenAISessionState()
    np.testing.assert_allclose(state.decode(event.audio), tone, atol=1 / 32768)
    with pytest.raises(ProtocolError, match="base64"):
        state.decode("%%%")
    with pytest.raises(ProtocolError, match="even"):
        state.decode(base64.b64encode(b"abc").decode())


def test_transcription_update_is_recognised() -> None:
    assert is_transcription_update({"type": "session.update", "session": {"type": "transcription"}})
    assert not is_transcription_update({"type": "session.update", "session": {"type": "realtime"}})
    with pytest.raises(ProtocolError) as info:
        parse_client_event('{"type": "response.create"}')
    assert info.value.code == "unknown_event_type"
