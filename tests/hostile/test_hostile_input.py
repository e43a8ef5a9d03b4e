"""Hostile input through the public interfaces of the real service (API keys on): REST, the
native realtime protocol and OpenAI's Realtime transcription mode. Each case asserts the status
or event, the OpenAI error shape, and that a normal request right after it succeeds.

REST (`POST /v1/audio/transcriptions`):
- empty file; WAV with zero frames; bytes that are not audio          -> 400 invalid_audio
- WAV declaring a 1 Hz sample rate (x16,000 when resampled)           -> 400 invalid_audio
- WAV whose header claims 4 GB (a streaming writer's placeholder)     -> 200, the audio there
- WAV whose header claims 1 GiB it does not have                      -> 400 truncated_audio
- 50 %-truncated MP3, OGG, FLAC, WAV, WebM                            -> 400 truncated_audio
- 50 %-truncated M4A (its index is at the end: nothing decodes)       -> 400 invalid_audio
- a file decoding past THEO_MAX_AUDIO_DURATION_S (claiming 7x more)   -> 400 audio_too_long,
  gateway memory bounded by the limit, not by the claim
- non-ASCII model names (`café`, U+2028, an encoded lone surrogate),
  path-traversal names, a 10,000-character name                       -> 404 model_not_found,
  and `/metrics` gains no label from any of them
- unknown language; a language the model does not support             -> 400 invalid_value
- a JSON body                                                         -> 415
- two files; a text field over 64 KiB                                 -> 400 invalid_request
- a field given twice (`stream=true`, `stream=false`)                 -> 400 invalid_value
- `Content-Length: 4 GB` and no body                                  -> 413 at once
- a chunked body (no `Content-Length`) 8x over the limit              -> 413 before the body is
  sent, proxy and gateway memory bounded
- a flood of 40 concurrent undecodable uploads                        -> 40 x 400

Realtime, both protocols:
- 100,000 nested `[`; JSON that is not an object                      -> invalid_json
- unknown command / event type                                        -> unknown_command /
  unknown_event_type
- odd-length PCM; bad base64; a binary frame in transcription mode    -> invalid_audio /
  invalid_frame
- a 10 MB frame                                                       -> frame_too_large
- absurd `session.configure` values                                   -> invalid_value (param)
- `?language=xx`                                                      -> error + close 1008
- `session.configure {language: "klingon"}`, OpenAI
  `transcription.language: "xx"`, a language the model lacks         -> invalid_value naming
  language, no internal text; a refused `session.update` changes nothing
- a flood of 300 invalid frames                                       -> 300 errors, socket kept
and after each, the same socket still answers, and a clip is transcribed.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from cli.realtime_client import RealtimeClient, float_to_pcm16, realtime_url
from tests.conftest import API_KEY, MAX_AUDIO_DURATION_S
from tests.hostile.inputs import (
    chunked_upload,
    declared_only,
    encode,
    pcm16_wav,
    peak_memory,
    wav_header,
    wav_u8,
)
from tests.realtime.helpers import clip_audio, clip_text, finals, silence, stream_wer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL = "whisper-tiny.en"
CLIP = "7902-96591-0000.wav"
UPLOAD_LIMIT = 25 * 1024 * 1024
INTERNAL_TEXT = re.compile(r"Traceback|\x1b\[|RayTaskError|File \"")


def assert_error_body(body: dict[str, Any], code: str, param: str | None) -> dict[str, Any]:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == code and error["param"] == param, error
    assert error["message"] and not INTERNAL_TEXT.search(error["message"]), error
    return dict(error)


def assert_error(r: httpx.Response, status: int, code: str, param: str | None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return assert_error_body(r.json(), code, param)


def post(url: str, file: bytes | None, timeout: float = 120, **fields: Any) -> httpx.Response:
    files = {"file": ("audio.bin", file)} if file is not None else None
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        data={"model": MODEL, **fields},
        files=files,
        timeout=timeout,
    )


def normal_request_succeeds(url: str) -> None:
    r = post(url, pcm16_wav(clip_audio(CLIP)))
    assert r.status_code == 200, r.text
    assert stream_wer(clip_text(CLIP), r.json()["text"]) <= 0.2


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


# ---- REST: what the audio is -----------------------------------------------------------------


def _placeholder_4gb() -> bytes:
    audio = pcm16_wav(clip_audio(CLIP))
    return wav_header(16_000, 2, 0xFFFFFFFF, riff_size=0xFFFFFFFF) + audio[44:]


AUDIO_CASES: dict[str, tuple[Callable[[], bytes], int, str | None]] = {
    "empty file": (lambda: b"", 400, "invalid_audio"),
    "wav with zero frames": (lambda: wav_header(16_000, 2, 0), 400, "invalid_audio"),
    "not audio": (lambda: b"this is not audio at all" * 40, 400, "invalid_audio"),
    "wav declaring 1 Hz": (lambda: wav_u8(1, 14_400), 400, "invalid_audio"),
    "wav header claiming 4 GB (placeholder)": (_placeholder_4gb, 200, None),
    "wav header claiming 1 GiB it lacks": (
        lambda: pcm16_wav(clip_audio(CLIP), data_size=1 << 30),
        400,
        "truncated_audio",
    ),
    **{
        f"50% truncated {fmt}": (
            lambda fmt=fmt: half(encode(clip_audio("jfk.wav"), fmt)),  # type: ignore[misc]
            400,
            "truncated_audio",
        )
        for fmt in ("mp3", "ogg", "flac", "wav", "webm")
    },
    "50% truncated m4a (index at the end)": (
        lambda: half(encode(clip_audio("jfk.wav"), "m4a")),
        400,
        "invalid_audio",
    ),
}


@pytest.mark.parametrize("case", sorted(AUDIO_CASES))
def test_rest_audio(serve_url: str, case: str) -> None:
    make, status, code = AUDIO_CASES[case]
    r = post(serve_url, make())
    if code is None:
        assert r.status_code == status, r.text
        assert stream_wer(clip_text(CLIP), r.json()["text"]) <= 0.2
    else:
        error = assert_error(r, status, code, "file")
        if "1 Hz" in case:
            assert "sample rate" in error["message"]
    normal_request_succeeds(serve_url)


def test_rest_duration_is_bounded_by_the_limit_not_the_claim(serve_url: str) -> None:
    """A 25 MB 8-bit WAV at 4 kHz holds 6,553 s: decoding it whole would take 420 MB of float32
    (and as much again to join it); decoding stops at the 900 s limit (58 MB)."""
    claim_s = (UPLOAD_LIMIT - 1024) / 4_000
    assert claim_s > 7 * MAX_AUDIO_DURATION_S
    data = wav_u8(4_000, claim_s)
    with peak_memory() as memory:
        r = post(serve_url, data)
    error = assert_error(r, 400, "audio_too_long", "file")
    assert f"{MAX_AUDIO_DURATION_S:g} seconds" in error["message"]
    assert memory.growth("gateway") < 300, memory.peak
    assert max(memory.growth(role) for role in memory.peak if role.startswith("engine")) < 50
    within = wav_u8(4_000, 60)  # a minute of 4 kHz audio is fine
    assert post(serve_url, within).status_code == 200
    normal_request_succeeds(serve_url)


# ---- REST: names, languages, forms -----------------------------------------------------------


def metric_lines(url: str) -> list[str]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return [line for line in text.splitlines() if line.startswith("theo_requests_total")]


BOGUS_MODELS = [
    "café",
    "line\u2028separator",
    b"lone-\xed\xa0\x80-surrogate",
    "../../etc/passwd",
    "whisper-tiny.en/../whisper-base",
    "..%2f..%2fetc%2fpasswd",
    "x" * 10_000,
]


def test_rest_bogus_model_names_are_404_and_never_labels(serve_url: str) -> None:
    before = metric_lines(serve_url)
    audio = pcm16_wav(clip_audio(CLIP))
    for model in BOGUS_MODELS:
        r = post(serve_url, audio, model=model)
        error = assert_error(r, 404, "model_not_found", "model")
        assert len(error["message"]) < 200
    for n in range(50):
        assert post(serve_url, audio, model=f"bogus-{n}").status_code == 404
    r = httpx.get(
        f"{serve_url}/v1/models/..%2F..%2Fetc%2Fpasswd",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert r.status_code == 404 and r.json()["error"]["code"] in ("model_not_found", "not_found")
    after = metric_lines(serve_url)
    new = set(after) - {line.rsplit(" ", 1)[0] for line in before}
    labels = {re.sub(r" [0-9.e+]+$", "", line) for line in after}
    assert not any("bogus" in line or "passwd" in line or "caf" in line for line in labels)
    assert any('model="unknown"' in line and 'status="404"' in line for line in after), new
    normal_request_succeeds(serve_url)


def test_rest_languages(serve_url: str) -> None:
    audio = pcm16_wav(clip_audio(CLIP))
    error = assert_error(post(serve_url, audio, language="xx"), 400, "invalid_value", "language")
    assert "xx" in error["message"]
    assert_error(post(serve_url, audio, language="klingon"), 400, "invalid_value", "language")
    error = assert_error(post(serve_url, audio, language="pt"), 400, "invalid_value", "language")
    assert MODEL in error["message"]
    r = post(serve_url, audio, language="xx", model="whisper-base")
    assert_error(r, 400, "invalid_value", "language")
    normal_request_succeeds(serve_url)


def test_rest_malformed_forms(serve_url: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    url = f"{serve_url}/v1/audio/transcriptions"
    r = httpx.post(url, headers=headers, json={"model": MODEL, "file": "AAAA"})
    assert_error(r, 415, "unsupported_media_type", None)
    audio = pcm16_wav(clip_audio(CLIP))
    two = [("file", ("a.wav", audio)), ("file", ("b.wav", audio))]
    r = httpx.post(url, headers=headers, data={"model": MODEL}, files=two)
    assert_error(r, 400, "invalid_request", None)
    r = post(serve_url, audio, prompt="p" * (65 * 1024))
    assert_error(r, 400, "invalid_request", None)
    r = httpx.post(
        url,
        headers=headers,
        data={"model": MODEL, "stream": ["true", "false"]},
        files={"file": ("a.wav", audio)},
    )
    assert_error(r, 400, "invalid_value", "stream")
    normal_request_succeeds(serve_url)


# ---- REST: bytes -----------------------------------------------------------------------------


def test_rest_declared_length_over_the_limit_is_refused_before_reading(serve_url: str) -> None:
    port = urlparse(serve_url).port
    assert port is not None
    answer = declared_only(port, API_KEY, 4 * 1024**3)
    assert answer.status == 413
    import json

    assert_error_body(json.loads(answer.body), "file_too_large", "file")
    normal_request_succeeds(serve_url)


def test_rest_chunked_upload_stops_at_the_limit(serve_url: str) -> None:
    """No `Content-Length`: Serve's proxy counts the bytes as they arrive and answers 413 while
    the client is still sending; neither the proxy nor the gateway buffers the rest."""
    import json

    port = urlparse(serve_url).port
    assert port is not None
    total = 8 * UPLOAD_LIMIT
    with peak_memory() as memory:
        answer = chunked_upload(port, API_KEY, MODEL, total=total, chunk=1 << 20)
    assert answer.status == 413, answer
    assert_error_body(json.loads(answer.body), "file_too_large", "file")
    # the answer came before the whole body: at the limit, plus what the sockets buffer
    assert answer.sent < UPLOAD_LIMIT + 16 * 1024 * 1024 < total, answer.sent
    assert memory.growth("proxy") < 120, memory.peak
    assert memory.growth("gateway") < 120, memory.peak
    normal_request_succeeds(serve_url)


def test_rest_flood_of_undecodable_uploads(serve_url: str) -> None:
    def one(n: int) -> httpx.Response:
        return post(serve_url, f"not audio {n} ".encode() * 4_000)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(one, range(40)))
    for r in answers:
        assert_error(r, 400, "invalid_audio", "file")
    normal_request_succeeds(serve_url)


# ---- realtime ---------------------------------------------------------------------------------


def native_url(serve_url: str, **query: str) -> str:
    return realtime_url(serve_url, model=query.pop("model", MODEL), **query)


HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def assert_native_error(event: dict[str, Any], code: str, param: str | None = None) -> None:
    assert event["type"] == "error" and event["code"] == code, event
    assert event["recoverable"] is True and event["param"] == param, event
    assert event["message"] and not INTERNAL_TEXT.search(event["message"]), event


async def native_still_answers(client: RealtimeClient, n: int) -> None:
    """The socket still answers: a `session.configure` is acknowledged (the n-th time)."""
    await client.send_json({"type": "session.configure", "silence_timeout_ms": 600})
    updated = await client.wait_for("session.updated", count=n)
    assert updated["config"]["silence_timeout_ms"] == 600


async def transcribes_a_clip(client: RealtimeClient) -> None:
    audio = np.concatenate([silence(0.3), clip_audio(CLIP), silence(1.2)])
    await client.stream(audio, speed=4.0)
    final = await client.wait_for("transcript.final", timeout=60)
    assert stream_wer(clip_text(CLIP), final["text"]) <= 0.2


NATIVE_FRAMES: list[tuple[str, bytes | str, str, str | None]] = [
    ("100,000 nested [", "[" * 100_000, "invalid_json", None),
    ("nested objects", '{"type": "session.configure", "a": ' * 50 + "1" + "}" * 50, "invalid_json",
     None),
    ("a JSON array", "[1, 2, 3]", "invalid_json", None),
    ("null", "null", "invalid_json", None),
    ("not JSON", "\x00\x01 not json", "invalid_json", None),
    ("unknown command", '{"type": "session.dance"}', "unknown_command", "type"),
    ("odd-length PCM", b"\x01\x02\x03", "invalid_audio", None),
    ("10 MB frame", b"\x00" * (10 * 1024 * 1024), "frame_too_large", None),
    ("silence_timeout_ms 10**12",
     '{"type": "session.configure", "silence_timeout_ms": 1000000000000}', "invalid_value",
     "silence_timeout_ms"),
    ("input_sample_rate 1", '{"type": "session.configure", "input_sample_rate": 1}',
     "invalid_value", "input_sample_rate"),
    ("vad_threshold 'x'", '{"type": "session.configure", "vad_threshold": "x"}',
     "invalid_value", "vad_threshold"),
    ("10,000 hot words",
     '{"type": "session.configure", "hot_words": [' + ",".join(['"w"'] * 10_000) + "]}",
     "invalid_value", "hot_words"),
    ("language klingon", '{"type": "session.configure", "language": "klingon"}',
     "invalid_value", "language"),
    ("language a lone surrogate", '{"type": "session.configure", "language": "\\ud800x"}',
     "invalid_value", "language"),
    ("language the model lacks", '{"type": "session.configure", "language": "pt"}',
     "invalid_value", "language"),
]  # fmt: skip


async def test_native_protocol_hostile_frames(serve_url: str) -> None:
    async with RealtimeClient(native_url(serve_url, language="en"), HEADERS) as client:
        await client.wait_for("session.created")
        for n, (name, frame, code, param) in enumerate(NATIVE_FRAMES, start=1):
            await client.send_raw(frame)
            error = await client.wait_for("error", count=n)
            assert error["code"] == code, (name, error)
            assert_native_error(error, code, param)
            await native_still_answers(client, n)
        await client.send_raw(b"")  # zero bytes of audio: nothing to do, no error
        await native_still_answers(client, len(NATIVE_FRAMES) + 1)
        assert len(client.record.of_type("error")) == len(NATIVE_FRAMES)
        assert client.record.events[0]["config"]["language"] == "en"
        await transcribes_a_clip(client)
        await client.close_session()
    assert client.record.close_code == 1000


async def test_native_flood_of_invalid_frames_keeps_the_socket(serve_url: str) -> None:
    async with RealtimeClient(native_url(serve_url), HEADERS) as client:
        await client.wait_for("session.created")
        for _ in range(300):
            await client.send_raw("{not json")
        await client.wait_for("error", count=300, timeout=60)
        await native_still_answers(client, 1)
        await transcribes_a_clip(client)
        await client.close_session()


@pytest.mark.parametrize(
    ("query", "code", "param"),
    [
        ({"language": "xx"}, "invalid_value", "language"),
        ({"language": "klingon", "model": "whisper-base"}, "invalid_value", "language"),
        ({"language": "pt"}, "invalid_value", "language"),
        ({"model": "../../etc/passwd"}, "model_not_found", None),
        ({"model": "café"}, "model_not_found", None),
    ],
)
async def test_realtime_refused_before_the_session(
    serve_url: str, query: dict[str, str], code: str, param: str | None
) -> None:
    async with RealtimeClient(native_url(serve_url, **query), HEADERS) as client:
        error = await client.wait_for("error")
        await asyncio.wait_for(client._reader, 10)  # type: ignore[arg-type]
    assert error["code"] == code and not INTERNAL_TEXT.search(error["message"]), error
    assert client.record.close_code == 1008
    async with RealtimeClient(native_url(serve_url), HEADERS) as client:
        await client.wait_for("session.created")
        await native_still_answers(client, 1)


def openai_url(serve_url: str, model: str = MODEL) -> str:
    return realtime_url(serve_url, model=model, intent="transcription")


def assert_openai_error(event: dict[str, Any], code: str, param_suffix: str | None) -> None:
    assert event["type"] == "error" and event["event_id"], event
    error = event["error"]
    assert {"type", "code", "message", "param", "event_id"} <= set(error), error
    assert error["code"] == code, event
    if param_suffix is None:
        assert error["param"] is None, event
    else:
        assert str(error["param"]).endswith(param_suffix), event
    assert error["message"] and not INTERNAL_TEXT.search(error["message"]), event


def openai_update(**transcription: Any) -> dict[str, Any]:
    return {
        "type": "session.update",
        "session": {"type": "transcription", "audio": {"input": {"transcription": transcription}}},
    }


def append(data: bytes | str) -> dict[str, Any]:
    payload = data if isinstance(data, str) else base64.b64encode(data).decode()
    return {"type": "input_audio_buffer.append", "audio": payload}


async def openai_still_answers(client: RealtimeClient, n: int) -> dict[str, Any]:
    await client.send_json(openai_update(prompt="hello"))
    updated = await client.wait_for("session.updated", count=n)
    return dict(updated["session"]["audio"]["input"]["transcription"])


OPENAI_FRAMES: list[tuple[str, dict[str, Any] | bytes | str, str, str | None]] = [
    ("100,000 nested [", "[" * 100_000, "invalid_json", None),
    ("deep session.update", '{"type": "session.update", "session": ' * 60 + "{}" + "}" * 60,
     "invalid_json", None),
    ("unknown event type", {"type": "response.create"}, "unknown_event_type", "type"),
    ("a binary frame", b"\x00\x01", "invalid_frame", None),
    ("bad base64", append("not base64 !!!"), "invalid_audio", "audio"),
    ("odd-length PCM", append(b"\x01\x02\x03"), "invalid_audio", "audio"),
    ("10 MB frame", append(b"\x00" * (7 * 1024 * 1024)), "frame_too_large", None),
    ("language xx", openai_update(language="xx"), "invalid_value", "language"),
    ("language the model lacks", openai_update(language="pt"), "invalid_value", "language"),
    ("unknown model", openai_update(model="../../etc/passwd"), "model_not_found", "model"),
    ("absurd silence", {"type": "session.update", "session": {"type": "transcription", "audio": {
        "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 10**9}}}}},
     "invalid_value", "silence_duration_ms"),
]  # fmt: skip


async def test_openai_mode_hostile_frames(serve_url: str) -> None:
    async with RealtimeClient(openai_url(serve_url), HEADERS) as client:
        await client.wait_for("session.created")
        for n, (name, frame, code, param) in enumerate(OPENAI_FRAMES, start=1):
            if isinstance(frame, dict):
                await client.send_json(frame)
            else:
                await client.send_raw(frame)
            error = await client.wait_for("error", count=n)
            assert error["error"]["code"] == code, (name, error)
            assert_openai_error(error, code, param)
            transcription = await openai_still_answers(client, n)
            # a refused session.update changed nothing
            assert transcription["model"] == MODEL and transcription["language"] is None, name
        speech = np.concatenate([silence(0.3), clip_audio(CLIP), silence(1.2)])
        pcm24 = np.interp(np.arange(0, len(speech), 16 / 24), np.arange(len(speech)), speech)
        data = float_to_pcm16(pcm24.astype(np.float32))
        for i in range(0, len(data), 9600):
            await client.send_json(append(data[i : i + 9600]))
        done = await client.wait_for(
            "conversation.item.input_audio_transcription.completed", timeout=60
        )
        assert stream_wer(clip_text(CLIP), done["transcript"]) <= 0.2
    assert not finals(client.record.events)
