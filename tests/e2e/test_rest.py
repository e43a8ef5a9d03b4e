"""The OpenAI audio REST API end to end: real Serve app, real models, openai SDK + raw HTTP."""

from __future__ import annotations

import io
import json
import re
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from serve.audio import decode_audio_bytes
from tests.support import clips, corpus_wer, wer

pytestmark = pytest.mark.e2e

ENGLISH = ["jfk.wav", "6930-75918-0000.wav", "7902-96591-0000.wav"]


def post(url: str, headers: dict[str, str], path: Path | None, **data: Any) -> httpx.Response:
    files = {"file": (path.name, path.read_bytes())} if path else None
    return httpx.post(
        f"{url}/v1/audio/transcriptions", data=data, files=files, headers=headers, timeout=300
    )


def wav_bytes(audio: np.ndarray, rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("model", ["whisper-tiny.en", "whisper-base"])
def test_sdk_json_corpus_wer(openai_client: Any, model: str) -> None:
    """Normalised corpus WER over JFK and the LibriSpeech clips (errors / reference words)."""
    references, hypotheses = [], []
    for name in ENGLISH:
        clip = clips()[name]
        with clip.path.open("rb") as fh:
            result = openai_client.audio.transcriptions.create(model=model, file=fh, language="en")
        assert result.usage.seconds == pytest.approx(clip.duration, abs=0.05)
        references.append(clip.transcript)
        hypotheses.append(result.text)
    assert corpus_wer(references, hypotheses) <= 0.1, hypotheses


def test_sdk_verbose_json_words_and_segments(openai_client: Any) -> None:
    clip = clips()["jfk.wav"]
    with clip.path.open("rb") as fh:
        r = openai_client.audio.transcriptions.create(
            model="whisper-base",
            file=fh,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert r.task == "transcribe" and r.language == "english"
    assert r.duration == pytest.approx(11.0, abs=0.05)
    assert wer(clip.transcript, r.text) <= 0.1
    assert r.segments and r.words
    assert [s.id for s in r.segments] == list(range(len(r.segments)))
    for s in r.segments:
        assert 0 <= s.start < s.end <= 11.05 and s.tokens and s.avg_logprob < 0
    starts = [w.start for w in r.words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in r.words)
    assert wer(clip.transcript, " ".join(w.word for w in r.words)) <= 0.1
    ask = [w for w in r.words if w.word.lower().strip(",.") == "ask"]
    assert ask and 2.0 < ask[0].start < 4.5  # "ask not" is said at ~3 s


def test_verbose_json_raw_granularity_word_only(
    serve_url: str, auth_headers: dict[str, str]
) -> None:
    r = post(
        serve_url,
        auth_headers,
        clips()["7902-96591-0000.wav"].path,
        model="whisper-tiny.en",
        response_format="verbose_json",
        **{"timestamp_granularities[]": "word"},
    )
    body = r.json()
    assert r.status_code == 200
    assert "segments" not in body and len(body["words"]) >= 8
    assert set(body["words"][0]) == {"word", "start", "end"}
    assert body["usage"] == {"type": "duration", "seconds": pytest.approx(2.095, abs=0.01)}


def test_text_srt_vtt(serve_url: str, auth_headers: dict[str, str]) -> None:
    clip = clips()["jfk.wav"]
    text = post(serve_url, auth_headers, clip.path, model="whisper-tiny.en", response_format="text")
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text.endswith("\n") and wer(clip.transcript, text.text) <= 0.1
    srt = post(serve_url, auth_headers, clip.path, model="whisper-tiny.en", response_format="srt")
    blocks = srt.text.strip().split("\n\n")
    stamp = r"\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d"
    for n, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(n) and re.fullmatch(stamp, lines[1]) and lines[2]
    vtt = post(serve_url, auth_headers, clip.path, model="whisper-tiny.en", response_format="vtt")
    assert vtt.text.startswith("WEBVTT\n\n")
    cues = re.findall(r"(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> ", vtt.text)
    assert len(cues) == len(blocks) >= 1
    assert wer(clip.transcript, " ".join(b.split("\n")[2] for b in blocks)) <= 0.1


def test_sse_stream_deltas_concatenate_to_final(
    serve_url: str, auth_headers: dict[str, str]
) -> None:
    clip = clips()["jfk.wav"]
    events = []
    with httpx.stream(
        "POST",
        f"{serve_url}/v1/audio/transcriptions",
        headers=auth_headers,
        data={"model": "whisper-tiny.en", "stream": "true"},
        files={"file": ("jfk.wav", clip.path.read_bytes())},
        timeout=300,
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    deltas = [e["delta"] for e in events if e["type"] == "transcript.text.delta"]
    done = events[-1]
    assert done["type"] == "transcript.text.done" and len(deltas) >= 1
    assert "".join(deltas).strip() == done["text"]
    assert done["usage"] == {"type": "duration", "seconds": 11.0}
    assert wer(clip.transcript, done["text"]) <= 0.1


def test_sdk_stream(openai_client: Any) -> None:
    with clips()["6930-75918-0000.wav"].path.open("rb") as fh:
        stream = openai_client.audio.transcriptions.create(
            model="whisper-tiny.en", file=fh, stream=True
        )
        events = list(stream)
    assert events[-1].type == "transcript.text.done"
    assert "".join(e.delta for e in events[:-1]).strip() == events[-1].text


def test_translation_to_english(openai_client: Any) -> None:
    with clips()["contagem.wav"].path.open("rb") as fh:
        r = openai_client.audio.translations.create(model="whisper-base", file=fh)
    assert wer("one two three four five six seven eight nine ten", r.text) <= 0.1, r.text


def test_language_detected_when_omitted(serve_url: str, auth_headers: dict[str, str]) -> None:
    clip = clips()["pangrama.wav"]  # synthetic float32 WAV, Portuguese
    r = post(
        serve_url, auth_headers, clip.path, model="whisper-base", response_format="verbose_json"
    )
    assert r.status_code == 200
    assert r.json()["language"] == "portuguese"
    assert wer(clip.transcript, r.json()["text"]) <= 0.25


def test_long_audio_is_transcribed_whole(serve_url: str, auth_headers: dict[str, str]) -> None:
    pause = np.zeros(8000, dtype=np.float32)
    parts = []
    reference = []
    for name in ["jfk.wav", "6930-75918-0000.wav", "jfk.wav", "7902-96591-0000.wav", "jfk.wav"]:
        parts += [decode_audio_bytes(clips()[name].path.read_bytes()), pause]
        reference.append(clips()[name].transcript)
    audio = np.concatenate(parts)
    assert len(audio) / 16_000 > 30
    r = httpx.post(
        f"{serve_url}/v1/audio/transcriptions",
        headers=auth_headers,
        data={"model": "whisper-tiny.en", "response_format": "verbose_json"},
        files={"file": ("long.wav", wav_bytes(audio))},
        timeout=300,
    )
    body = r.json()
    assert r.status_code == 200, body
    assert wer(" ".join(reference), body["text"]) <= 0.1, body["text"]
    starts = [s["start"] for s in body["segments"]]
    assert starts == sorted(starts) and body["segments"][-1]["end"] > 38
    assert body["segments"][-1]["end"] <= body["duration"] + 0.05


def test_eight_concurrent_requests_are_batched(
    serve_url: str, auth_headers: dict[str, str]
) -> None:
    def batch_stats() -> tuple[float, float]:
        text = httpx.get(f"{serve_url}/metrics", timeout=30).text
        count = re.search(r'theo_batch_size_count\{model="whisper-tiny.en"\} (\S+)', text)
        total = re.search(r'theo_batch_size_sum\{model="whisper-tiny.en"\} (\S+)', text)
        return (float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0)

    before_count, before_sum = batch_stats()
    clip = clips()["jfk.wav"]
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(
                lambda _: post(serve_url, auth_headers, clip.path, model="whisper-tiny.en"),
                range(8),
            )
        )
    assert all(r.status_code == 200 for r in responses)
    assert all(wer(clip.transcript, r.json()["text"]) <= 0.1 for r in responses)
    after_count, after_sum = batch_stats()
    windows, batches = after_sum - before_sum, after_count - before_count
    assert windows >= 8
    assert batches < windows, "no batch held more than one window"
    le1 = re.search(
        r'theo_batch_size_bucket\{le="1.0",model="whisper-tiny.en"\} (\S+)',
        httpx.get(f"{serve_url}/metrics", timeout=30).text,
    )
    assert le1 is not None and float(le1.group(1)) < after_count


def test_models_list_and_get(
    openai_client: Any, serve_url: str, auth_headers: dict[str, str]
) -> None:
    ids = {m.id for m in openai_client.models.list()}
    assert {"whisper-tiny.en", "whisper-base"} <= ids
    raw = httpx.get(f"{serve_url}/v1/models", headers=auth_headers).json()
    assert raw["object"] == "list"
    card = next(m for m in raw["data"] if m["id"] == "whisper-base")
    assert card["object"] == "model" and isinstance(card["created"], int) and card["owned_by"]
    assert card["capabilities"]["translation"] is True
    one = httpx.get(f"{serve_url}/v1/models/whisper-tiny.en", headers=auth_headers).json()
    assert one["id"] == "whisper-tiny.en" and one["capabilities"]["languages"] == ["en"]


def test_health_and_metrics(serve_url: str) -> None:
    health = httpx.get(f"{serve_url}/health").json()
    assert health["status"] == "ok"
    assert health["models"]["whisper-base"]["state"] == "ready"
    metrics = httpx.get(f"{serve_url}/metrics")
    assert metrics.status_code == 200 and "theo_requests_total" in metrics.text


def assert_error(
    r: httpx.Response, status: int, code: str | None, param: str | None
) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["code"] == code and error["param"] == param
    return dict(error)


def test_bad_inputs(serve_url: str, auth_headers: dict[str, str], tmp_path: Path) -> None:
    jfk = clips()["jfk.wav"].path
    url = serve_url
    assert_error(post(url, auth_headers, jfk, model="nope"), 404, "model_not_found", "model")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 50)
    assert_error(
        post(url, auth_headers, garbage, model="whisper-tiny.en"), 400, "invalid_audio", "file"
    )
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert_error(
        post(url, auth_headers, empty, model="whisper-tiny.en"), 400, "invalid_audio", "file"
    )
    assert_error(
        post(url, auth_headers, jfk, model="whisper-tiny.en", response_format="xml"),
        400,
        "invalid_value",
        "response_format",
    )
    assert_error(
        post(url, auth_headers, jfk, model="whisper-tiny.en", temperature="7"),
        400,
        "invalid_value",
        "temperature",
    )
    assert_error(
        post(url, auth_headers, jfk, model="whisper-tiny.en", language="pt"),
        400,
        "invalid_value",
        "language",
    )
    assert_error(
        post(url, auth_headers, None, model="whisper-tiny.en"), 400, "invalid_value", "file"
    )
    r = httpx.post(
        f"{url}/v1/audio/translations",
        headers=auth_headers,
        data={"model": "whisper-tiny.en"},
        files={"file": ("a.wav", jfk.read_bytes())},
    )
    error = assert_error(r, 400, "unsupported_capability", "model")
    assert "whisper-tiny.en" in error["message"]
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (26 * 1024 * 1024))
    assert_error(
        post(url, auth_headers, big, model="whisper-tiny.en"), 413, "file_too_large", "file"
    )
    assert_error(httpx.get(f"{url}/v1/nothing-here", headers=auth_headers), 404, "not_found", None)


def test_api_key_required(serve_url: str) -> None:
    jfk = clips()["jfk.wav"].path
    assert_error(post(serve_url, {}, jfk, model="whisper-tiny.en"), 401, "invalid_api_key", None)
    wrong = {"Authorization": "Bearer wrong"}
    assert_error(post(serve_url, wrong, jfk, model="whisper-tiny.en"), 401, "invalid_api_key", None)
    assert httpx.get(f"{serve_url}/v1/models").status_code == 401


@pytest.mark.parametrize("fmt", ["flac", "mp3", "ogg", "webm", "m4a"])
def test_containers_and_rates(
    serve_url: str, auth_headers: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    import av

    clip = clips()["6930-75918-0000.wav"]
    audio = decode_audio_bytes(clip.path.read_bytes())
    codec = {"flac": "flac", "mp3": "mp3", "ogg": "libopus", "webm": "libopus", "m4a": "aac"}[fmt]
    rate = 48_000 if codec == "libopus" else 44_100
    stereo = np.repeat(
        np.interp(np.arange(0, len(audio), 16_000 / rate), np.arange(len(audio)), audio)[None, :],
        2,
        axis=0,
    ).astype(np.float32)
    path = tmp_path / f"clip.{fmt}"
    with av.open(str(path), "w", format={"m4a": "mp4", "ogg": "ogg"}.get(fmt, fmt)) as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(stereo, format="fltp", layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    r = post(serve_url, auth_headers, path, model="whisper-tiny.en")
    assert r.status_code == 200, r.text
    assert wer(clip.transcript, r.json()["text"]) <= 0.13  # at most one word of eight
