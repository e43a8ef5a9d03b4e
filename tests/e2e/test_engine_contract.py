"""One contract for every registered engine (parametrized over the registry, each on its
model in `tests.conftest.CONTRACT_MODELS`): `model=whisper-…` or `model=wenet-…` changes
nothing for a REST client (same fields, same types, same errors)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.conftest import WENET_MODEL
from tests.support import clips, wer

pytestmark = pytest.mark.e2e

JFK = clips()["jfk.wav"]


def transcribe(url: str, headers: dict[str, str], **data: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        headers=headers,
        data=data,
        files={"file": ("jfk.wav", JFK.path.read_bytes())},
        timeout=300,
    )


def test_json(serve_url: str, auth_headers: dict[str, str], contract_model: str) -> None:
    model = contract_model
    body = transcribe(serve_url, auth_headers, model=model).json()
    assert set(body) == {"text", "usage"}
    assert body["usage"] == {"type": "duration", "seconds": 11.0}
    assert wer(JFK.transcript, body["text"]) <= 0.1


def test_verbose_json(serve_url: str, auth_headers: dict[str, str], contract_model: str) -> None:
    model = contract_model
    r = transcribe(
        serve_url,
        auth_headers,
        model=model,
        response_format="verbose_json",
        **{"timestamp_granularities[]": ["word", "segment"]},
    )
    body = r.json()
    assert set(body) == {"task", "language", "duration", "text", "segments", "words", "usage"}
    assert body["task"] == "transcribe" and body["language"] == "english"
    segment_types = {
        "id": int,
        "seek": int,
        "start": float,
        "end": float,
        "text": str,
        "tokens": list,
        "temperature": float,
        "avg_logprob": float,
        "compression_ratio": float,
        "no_speech_prob": float,
    }
    for i, seg in enumerate(body["segments"]):
        assert set(seg) == set(segment_types) and seg["id"] == i
        for key, kind in segment_types.items():
            assert isinstance(seg[key], kind) or (kind is float and isinstance(seg[key], int))
        assert 0 <= seg["start"] <= seg["end"] <= 11.05
    words = body["words"]
    assert words and all(set(w) == {"word", "start", "end"} for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert wer(JFK.transcript, " ".join(w["word"] for w in words)) <= 0.1
    ask = next(w for w in words if w["word"].lower().strip(",.") == "ask")
    assert 1.0 < ask["start"] < 4.5  # "ask not" is said at about 2-3 s


def test_text_srt_vtt(serve_url: str, auth_headers: dict[str, str], contract_model: str) -> None:
    model = contract_model
    text = transcribe(serve_url, auth_headers, model=model, response_format="text")
    assert text.headers["content-type"].startswith("text/plain") and text.text.endswith("\n")
    srt = transcribe(serve_url, auth_headers, model=model, response_format="srt").text
    vtt = transcribe(serve_url, auth_headers, model=model, response_format="vtt").text
    blocks = srt.strip().split("\n\n")
    assert [b.split("\n")[0] for b in blocks] == [str(i) for i in range(1, len(blocks) + 1)]
    assert all(
        re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", b.split("\n")[1])
        for b in blocks
    )
    assert vtt.startswith("WEBVTT\n\n")
    assert len(re.findall(r"\d\d:\d\d:\d\d\.\d{3} --> ", vtt)) == len(blocks)
    assert wer(JFK.transcript, " ".join(b.split("\n", 2)[2] for b in blocks)) <= 0.1
    assert wer(JFK.transcript, text.text) <= 0.1


def test_sse(serve_url: str, auth_headers: dict[str, str], contract_model: str) -> None:
    model = contract_model
    events = []
    with httpx.stream(
        "POST",
        f"{serve_url}/v1/audio/transcriptions",
        headers=auth_headers,
        data={"model": model, "stream": "true"},
        files={"file": ("jfk.wav", JFK.path.read_bytes())},
        timeout=300,
    ) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "transcript.text.done"
    assert "".join(e["delta"] for e in events[:-1]) == events[-1]["text"]
    assert events[-1]["usage"] == {"type": "duration", "seconds": 11.0}


def test_error_contract(serve_url: str, auth_headers: dict[str, str], contract_model: str) -> None:
    model = contract_model
    garbage = httpx.post(
        f"{serve_url}/v1/audio/transcriptions",
        headers=auth_headers,
        data={"model": model},
        files={"file": ("x.wav", b"not audio" * 20)},
    )
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_audio"
    bad = transcribe(serve_url, auth_headers, model=model, response_format="xml")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "response_format"
    translation = httpx.post(
        f"{serve_url}/v1/audio/translations",
        headers=auth_headers,
        data={"model": model},
        files={"file": ("a.wav", b"x")},
    )
    assert translation.status_code == 400
    assert translation.json()["error"] == {
        "message": f"The model '{model}' does not support translation.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "unsupported_capability",
    }


def test_native_hot_words_change_the_ctc_output(
    serve_url: str, auth_headers: dict[str, str]
) -> None:
    """The playback model says 'country' with 'county' as a close second at one place: the
    hot word, applied natively in the CTC prefix beam search, flips it."""
    plain = transcribe(serve_url, auth_headers, model=WENET_MODEL).json()["text"]
    boosted = transcribe(serve_url, auth_headers, model=WENET_MODEL, hot_words="county").json()
    assert "what your country can do" in plain
    assert "what your county can do" in boosted["text"]
    assert boosted["text"].endswith("for your country")
