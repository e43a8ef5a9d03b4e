"""A third engine from outside the core tree: `tests/plugins/dtmf`, a package that decodes
telephone keypad tones (Goertzel filters) and streams them natively, registered only through
the `theo.engines` entry point of its own pyproject.toml. Nothing in `serve/`, `engines/`, the
chart or the other tests knows it.

The package is "installed" the way pip would install it: a `.dist-info` with its
`entry_points.txt`, on the PYTHONPATH of a `theo serve` subprocess (and so of its Ray
workers). This test process never registers it (its registry stays that of the repository),
and real clients drive it: the OpenAI SDK over REST, the native realtime protocol and the
OpenAI Realtime transcription mode over `/v1/realtime` with G.711 mu-law at 8 kHz.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import signal
import sys
import tomllib
import warnings
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from cli.realtime_client import RealtimeClient, float_to_pcm16, realtime_url
from engines.spec import registered_engines
from serve.local import free_port, wait_healthy
from tests.support import theo_serve

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PLUGIN = Path(__file__).resolve().parent / "plugins" / "dtmf"
MODEL = "dtmf-keypad"
RATE = 16_000
ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")

sys.path.insert(0, str(PLUGIN))  # the decoder's own unit tests import it; nothing registers
from theo_dtmf.backend import Detector, DtmfConfig  # noqa: E402


# ---- test audio: key presses as a phone sends them ---------------------------------------------
def tone(key: str, ms: int, level: float = 0.25, rate: int = RATE) -> np.ndarray:
    row = next(i for i, keys in enumerate(KEYPAD) if key in keys)
    column = KEYPAD[row].index(key)
    t = np.arange(rate * ms // 1000) / rate
    low = np.sin(2 * np.pi * ROWS[row] * t)
    high = np.sin(2 * np.pi * COLUMNS[column] * t + 0.7)
    return (level * low + level * 1.2 * high).astype(np.float32)


def pause(ms: int, rate: int = RATE) -> np.ndarray:
    return np.zeros(rate * ms // 1000, dtype=np.float32)


def dial(
    groups: list[str], rng: np.random.Generator, rate: int = RATE, noise: float = 0.01
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Key groups separated by long pauses; each press 60-120 ms, gaps 50-120 ms, light noise.
    Returns the audio and each press as (key, start s, end s)."""
    parts, presses, position = [pause(300, rate)], [], 300
    for group in groups:
        for key in group:
            ms = int(rng.integers(60, 121))
            presses.append((key, position / 1000, (position + ms) / 1000))
            gap = int(rng.integers(50, 121))
            parts += [tone(key, ms, float(rng.uniform(0.1, 0.3)), rate), pause(gap, rate)]
            position += ms + gap
        parts.append(pause(900, rate))
        position += 900
    audio = np.concatenate(parts)
    audio += rng.normal(0, noise, len(audio)).astype(np.float32)
    return np.clip(audio, -1, 1), presses


def wav_bytes(audio: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(float_to_pcm16(audio))
    return buffer.getvalue()


def spaced(group: str) -> str:
    return " ".join(group)


GROUPS = ["5550123", "#0*", "9ABCD81"]
"""Every key of the pad, in three groups (three segments)."""


# ---- the decoder itself -----------------------------------------------------------------------
def test_the_decoder_finds_every_key_in_noise_and_streams_what_it_decodes_whole() -> None:
    rng = np.random.default_rng(11)
    audio, presses = dial(GROUPS, rng, noise=0.02)
    whole = Detector(DtmfConfig())
    finals = [s for s in whole.accept(audio) + whole.finish() if s.is_final]
    assert [s.text for s in finals] == [spaced(g) for g in GROUPS]
    words = [w for s in finals for w in s.words]
    assert [w.word for w in words] == [key for key, _, _ in presses]
    for word, (_, start, end) in zip(words, presses, strict=True):
        assert abs(word.start - start) <= 0.025 and abs(word.end - end) <= 0.045
    streamed = Detector(DtmfConfig())
    updates = []
    for i in range(0, len(audio), 2_731):  # odd chunks: frames straddle them
        updates += streamed.accept(audio[i : i + 2_731])
    updates += streamed.finish()
    assert [s for s in updates if s.is_final] == finals
    partials = [s.text for s in updates if not s.is_final and s.segment_id == 0]
    assert partials == [spaced(GROUPS[0][:n]) for n in range(1, len(GROUPS[0]) + 1)]


def test_speech_silence_and_single_tones_are_not_keys() -> None:
    from tests.realtime.helpers import clip_audio

    t = np.arange(RATE) / RATE
    single = (0.3 * np.sin(2 * np.pi * 1209.0 * t)).astype(np.float32)  # one tone, no row
    for audio in (clip_audio("jfk.wav"), pause(1000), single):
        detector = Detector(DtmfConfig())
        assert [s for s in detector.accept(audio) + detector.finish()] == []


# ---- the engine in a running Theo ----------------------------------------------------------------
def install_plugin(site: Path) -> None:
    """What `pip install tests/plugins/dtmf` leaves on the path: the distribution's metadata
    with the entry points its pyproject.toml declares (the package itself is on PYTHONPATH)."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    metadata = f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    lines = []
    for group, points in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


MANIFEST = f"""\
name: {MODEL}
engine: dtmf
description: DTMF keypad tones
capabilities:
  # Frame labels collapsed by runs, silence as the blank: CTC-style decoding.
  architecture: ctc
  streaming: true
  partial_transcripts: true
  word_timestamps: true
engine_config:
  segment_gap_ms: 600
"""


@pytest.fixture(scope="module")
def dtmf_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("dtmf")
    install_plugin(root / "site")
    (root / "models" / MODEL).mkdir(parents=True)
    (root / "models" / MODEL / "theo.yaml").write_text(MANIFEST, encoding="utf-8")
    path = [str(root / "site"), str(PLUGIN), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "THEO_MODELS_DIR": str(root / "models"),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("THEO_API_KEYS", None)
    env.pop("THEO_MODELS", None)
    port = free_port()
    process = theo_serve(port, env, "--no-bundled")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process=process)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except Exception:
            process.kill()


def test_registered_through_its_entry_point_only_where_installed(dtmf_url: str) -> None:
    assert "dtmf" not in registered_engines(), "this process has the repository's engines only"
    models = httpx.get(f"{dtmf_url}/v1/models").json()["data"]
    assert [(m["id"], m["engine"]) for m in models] == [(MODEL, "dtmf")]


def test_rest_through_the_openai_sdk(dtmf_url: str) -> None:
    from openai import BadRequestError, OpenAI

    audio, presses = dial(GROUPS, np.random.default_rng(5))
    client = OpenAI(base_url=f"{dtmf_url}/v1", api_key="none", max_retries=0)
    upload = ("keys.wav", wav_bytes(audio))
    text = client.audio.transcriptions.create(model=MODEL, file=upload).text
    assert text == " ".join(spaced(g) for g in GROUPS)
    verbose = client.audio.transcriptions.create(
        model=MODEL,
        file=upload,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert [s.text for s in verbose.segments or []] == [spaced(g) for g in GROUPS]
    words = verbose.words or []
    assert [w.word for w in words] == [key for key, _, _ in presses]
    starts = [start for _, start, _ in presses]
    assert all(abs(w.start - start) <= 0.03 for w, start in zip(words, starts, strict=True))
    srt = client.audio.transcriptions.create(model=MODEL, file=upload, response_format="srt")
    assert str(srt).startswith("1\n00:00:00,3")
    with pytest.raises(BadRequestError) as refused:
        client.audio.translations.create(model=MODEL, file=upload)
    assert refused.value.body["code"] == "unsupported_capability"  # type: ignore[index]


def test_rest_sse_deltas_add_up_to_the_text(dtmf_url: str) -> None:
    audio, _ = dial(GROUPS, np.random.default_rng(6))
    with httpx.stream(
        "POST",
        f"{dtmf_url}/v1/audio/transcriptions",
        data={"model": MODEL, "stream": "true"},
        files={"file": ("keys.wav", wav_bytes(audio))},
        timeout=60,
    ) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line[:6] == "data: "]
    assert [e["type"] for e in events] == ["transcript.text.delta"] * 3 + ["transcript.text.done"]
    assert "".join(e["delta"] for e in events[:-1]) == events[-1]["text"]
    assert events[-1]["text"] == " ".join(spaced(g) for g in GROUPS)


async def test_realtime_native_partials_key_by_key_then_the_final(dtmf_url: str) -> None:
    """No speech, so no VAD: the session's audio is one segment until the client commits.
    The engine's own decoder sends a partial per key press while the keys are still sounding."""
    group = "0800555"
    audio, presses = dial([group], np.random.default_rng(7))
    async with RealtimeClient(realtime_url(dtmf_url, model=MODEL)) as client:
        await client.wait_for("session.created")
        await client.send_json({"type": "session.configure", "vad_enabled": False})
        await client.wait_for("session.updated")
        await client.stream(audio, speed=2.0)
        await client.send_json({"type": "input_audio_buffer.commit"})
        final = await client.wait_for("transcript.final", timeout=60)
        await client.close_session(timeout=60)
    events = client.record.events
    assert final["text"] == spaced(group) and final["segment_id"] == 0
    assert [w["word"] for w in final["words"]] == list(group)
    partials = [e for e in events if e["type"] == "transcript.partial"]
    texts = [p["text"] for p in partials]
    # Key by key; keys pressed within one engine call share a partial. A partial repeats the
    # text before it only to mark more of it stable; stable words are never taken back.
    prefixes = [spaced(group[:n]) for n in range(1, len(group) + 1)]
    distinct = [text for i, text in enumerate(texts) if i == 0 or text != texts[i - 1]]
    assert distinct == sorted(set(distinct), key=prefixes.index) and texts[-1] == spaced(group)
    for before, after in itertools.pairwise(partials):
        assert after["stable"].startswith(before["stable"]), (before, after)
        if after["text"] == before["text"]:
            assert len(after["stable"]) > len(before["stable"]), (before, after)
    assert len(texts) >= 3, texts
    last_key_end_ms = presses[-1][2] * 1000
    assert partials[0]["timestamp_ms"] < last_key_end_ms, "partials come while dialling"
    assert events[-1]["type"] == "session.closed" and events[-1]["segments_transcribed"] == 1


async def test_realtime_openai_mode_over_g711_mu_law(dtmf_url: str) -> None:
    """A phone line: 8 kHz mu-law through OpenAI's Realtime transcription events, manual
    commit (no server VAD); the deltas add up to the completed transcript."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    group = "*31#"
    audio, _ = dial([group], np.random.default_rng(8), rate=8_000, noise=0.005)
    mulaw = audioop.lin2ulaw(float_to_pcm16(audio), 2)
    url = realtime_url(dtmf_url, model=MODEL, intent="transcription")
    async with RealtimeClient(url) as client:
        await client.wait_for("session.created")
        update: dict[str, Any] = {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": None}},
            },
        }
        await client.send_json(update)
        await client.wait_for("session.updated")
        for i in range(0, len(mulaw), 800):  # 100 ms per append, at 2x real time
            chunk = base64.b64encode(mulaw[i : i + 800]).decode()
            await client.send_json({"type": "input_audio_buffer.append", "audio": chunk})
            await asyncio.sleep(0.05)
        await client.send_json({"type": "input_audio_buffer.commit"})
        done = await client.wait_for(
            "conversation.item.input_audio_transcription.completed", timeout=60
        )
    assert done["transcript"] == spaced(group)
    deltas = [
        e["delta"]
        for e in client.record.events
        if e["type"] == "conversation.item.input_audio_transcription.delta"
    ]
    assert deltas and "".join(deltas) == done["transcript"]
