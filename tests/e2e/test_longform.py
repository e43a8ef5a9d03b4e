"""Long-form accuracy and batch invariance through REST, on long files made at test time
(`tests/speech.py`: espeak-ng sentences and the shared real clips, joined with pauses).

- Long audio: the served text against the bare engine's own long-form decode
  (`WhisperModel.transcribe(..., condition_on_previous_text=True, vad_filter=True)`) of the same
  file in this process. The two cut the audio differently - the bare engine decodes the speech
  VAD kept, glued together, in 30 s steps; Theo decodes windows of the original audio cut in
  pauses - so their texts differ by a few words (3-6 % on these files); `MAX_WER_VS_BARE`
  leaves room for that and fails a lost window or a repeated sentence (dropping the context
  made one file 22 % apart).
- Batch invariance: the same requests alone, then all at once, give the same texts.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from engines.base import SAMPLE_RATE
from tests.conftest import API_KEY
from tests.e2e.test_rest import wav_bytes
from tests.speech import long_file, menu_number_styles, real_clip, speak
from tests.support import clips, normalize, wer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
MODEL = "whisper-tiny.en"
MAX_WER_VS_BARE = 0.10
"""Word error rate of the served text against the bare engine's text (see module doc)."""
REPEAT_NGRAM = 6


def transcribe(url: str, audio: Any, **fields: Any) -> dict[str, Any]:
    r = httpx.post(
        f"{url}/v1/audio/transcriptions",
        headers=HEADERS,
        data={"model": MODEL, "response_format": "verbose_json", **fields},
        files={"file": ("long.wav", wav_bytes(audio))},
        timeout=600,
    )
    body: dict[str, Any] = r.json()
    assert r.status_code == 200, body
    return body


@pytest.fixture(scope="module")
def bare_model(models_dir: Path) -> Any:
    from faster_whisper import WhisperModel

    from engines.manifest import load_manifest

    manifest = load_manifest(models_dir / MODEL / "theo.yaml")
    return WhisperModel(
        str(manifest.model_path()), device="cpu", compute_type="int8", cpu_threads=2
    )


def sentences(text: str) -> list[str]:
    return [s for s in (normalize(p) for p in re.split(r"[.!?]+", text)) if len(s.split()) >= 3]


def repeated_ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = normalize(text).split()
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return [gram for gram, count in counts.items() if count > 1]


@pytest.mark.parametrize(("seed", "minutes", "voice"), [(1, 2.5, "en-gb"), (2, 1.8, "en-us+m3")])
def test_long_audio_matches_the_bare_engine_without_repeats(
    serve_url: str, bare_model: Any, seed: int, minutes: float, voice: str
) -> None:
    speech = long_file(seed, minutes, voice)
    assert 60 <= speech.duration <= 180
    assert not repeated_ngrams(speech.reference, REPEAT_NGRAM), "the file says nothing twice"
    body = transcribe(serve_url, speech.audio)
    text = body["text"]
    segments, _ = bare_model.transcribe(
        speech.audio, language="en", condition_on_previous_text=True, vad_filter=True
    )
    bare = "".join(s.text for s in segments).strip()
    assert wer(bare, text) <= MAX_WER_VS_BARE, (text, bare)
    assert wer(speech.reference, text) <= wer(speech.reference, bare) + 0.05, text

    said = sentences(text)
    assert len(said) == len(set(said)), [s for s, c in Counter(said).items() if c > 1]
    assert not repeated_ngrams(text, REPEAT_NGRAM), repeated_ngrams(text, REPEAT_NGRAM)

    windows: dict[int, str] = defaultdict(str)
    for segment in body["segments"]:
        windows[segment["seek"]] += segment["text"]
    styles = {seek: menu_number_styles(words) for seek, words in windows.items()}
    assert sum(1 for s in styles.values() if s) >= 3, "menu numbers in at least 3 windows"
    assert len({style for s in styles.values() for style in s}) == 1, styles
    assert body["segments"][-1]["end"] <= body["duration"] + 0.05


def invariance_set() -> list[tuple[str, Any, dict[str, Any]]]:
    """Eight requests: short clips (one window) and long files (3-4 windows), some with
    word timings, which used to leak between the windows of a batch."""
    words = {"timestamp_granularities[]": ["word", "segment"]}
    short = [
        ("jfk", real_clip("jfk.wav"), words),
        ("libri", real_clip("6930-75918-0000.wav"), {}),
        ("menu", speak("To speak with a nurse, press 5. To repeat this menu, press 9."), words),
        ("bakery", speak("A small bakery sells fresh bread every morning.", "en-gb"), {}),
        ("train", speak("The train to Boston leaves at 6:45 in the evening.", "en-us+f2"), {}),
    ]
    long = [
        (f"long{seed}", long_file(seed, minutes, voice).audio, fields)
        for seed, minutes, voice, fields in [
            (3, 1.1, "en-us", words),
            (4, 1.4, "en-gb", {}),
            (5, 1.0, "en-us+f2", words),
        ]
    ]
    return short + long


def batch_stats(url: str) -> tuple[float, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    count = re.search(rf'theo_batch_size_count\{{model="{MODEL}"\}} (\S+)', text)
    total = re.search(rf'theo_batch_size_sum\{{model="{MODEL}"\}} (\S+)', text)
    return (float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0)


def test_same_text_alone_and_batched(serve_url: str) -> None:
    requests = invariance_set()
    assert sum(len(audio) for _, audio, _ in requests) / SAMPLE_RATE > 200
    alone = {name: transcribe(serve_url, audio, **fields) for name, audio, fields in requests}
    before = batch_stats(serve_url)
    with ThreadPoolExecutor(len(requests)) as pool:
        together = dict(
            zip(
                [name for name, _, _ in requests],
                pool.map(lambda r: transcribe(serve_url, r[1], **r[2]), requests),
                strict=True,
            )
        )
    after = batch_stats(serve_url)
    batches, windows = after[0] - before[0], after[1] - before[1]
    assert windows > batches, "the concurrent requests shared batches"

    def sampled(body: dict[str, Any]) -> bool:
        return any(s["temperature"] > 0 for s in body["segments"])

    same = [name for name in alone if alone[name]["text"] == together[name]["text"]]
    # A window that falls back to a sampled temperature gets a random text, alone or not
    # (CTranslate2's sampling cannot be seeded per window): only such requests may differ.
    for name in alone:
        if name not in same:
            assert sampled(alone[name]) or sampled(together[name]), (
                name,
                alone[name]["text"],
                together[name]["text"],
            )
    assert len(same) >= len(requests) - 1, same
    for name in same:
        if "words" in alone[name]:
            assert alone[name]["words"] == together[name]["words"], name
    assert clips()["jfk.wav"].transcript.split()[0].lower() in alone["jfk"]["text"].lower()
