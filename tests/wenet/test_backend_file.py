"""`WenetBackend.transcribe_file` with generated TorchScript models and real audio."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from engines.base import HealthState, TranscribeOptions
from engines.manifest import load_manifest
from engines.wenet.backend import WenetBackend
from engines.wenet.testing.audio import bursts
from engines.wenet.testing.generate import GeneratedModel
from tests.wenet.conftest import JFK_TEXT, LONG_PAUSES, make_backend


async def test_playback_model_transcribes_jfk_exactly(
    jfk_backend: WenetBackend, jfk_audio: np.ndarray
) -> None:
    result = await jfk_backend.transcribe_file(jfk_audio, TranscribeOptions(word_timestamps=True))
    assert result.text == JFK_TEXT
    assert result.language == "en"
    assert result.duration == pytest.approx(11.0, abs=0.01)
    assert " ".join(s.text for s in result.segments) == JFK_TEXT
    assert [s.id for s in result.segments] == list(range(len(result.segments)))
    words = result.words
    assert [w.word for w in words] == JFK_TEXT.split()
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(words))
    # speech starts ~0.3 s in and the script is spread over the speech
    assert 0.05 < words[0].start < 0.5 and 8.0 < words[-1].end <= 11.0
    assert all(0.5 < w.probability <= 1.0 for w in words)
    assert result.batch_sizes == [1]  # one full-context encoder pass


async def test_words_only_when_asked(jfk_backend: WenetBackend, jfk_audio: np.ndarray) -> None:
    result = await jfk_backend.transcribe_file(jfk_audio, TranscribeOptions())
    assert result.text == JFK_TEXT and result.words == []
    assert all(s.tokens for s in result.segments)


async def test_pauses_split_segments(jfk_model: GeneratedModel, jfk_audio: np.ndarray) -> None:
    backend = make_backend(jfk_model)  # WeNet's 1 s rule: jfk.wav's two long pauses split
    result = await backend.transcribe_file(jfk_audio, TranscribeOptions())
    assert result.text == JFK_TEXT
    assert len(result.segments) == 3
    gaps = [b.start - a.end for a, b in itertools.pairwise(result.segments)]
    assert all(gap > 0.8 for gap in gaps)


async def test_hot_word_changes_the_output(
    jfk_backend: WenetBackend, jfk_audio: np.ndarray
) -> None:
    biased = await jfk_backend.transcribe_file(jfk_audio, TranscribeOptions(hot_words=("cuntry",)))
    assert biased.text == JFK_TEXT.replace("country", "cuntry", 1)
    # a hot word already on the best path, or one the units cannot spell, changes nothing
    for words in [("country",), ("zebra",), ("Americans,", "fellow")]:
        result = await jfk_backend.transcribe_file(jfk_audio, TranscribeOptions(hot_words=words))
        assert result.text == JFK_TEXT, words


async def test_context_graphs_are_cached(jfk_model: GeneratedModel, jfk_audio: np.ndarray) -> None:
    backend = make_backend(jfk_model)
    short = jfk_audio[: 16000 * 2]
    for _ in range(3):
        await backend.transcribe_file(short, TranscribeOptions(hot_words=("cuntry", " ")))
    await backend.transcribe_file(short, TranscribeOptions(hot_words=("cuntry",)))
    assert backend._graphs is not None and backend._graphs.builds == 1


async def test_quantized_export_loads(jfk_model: GeneratedModel, jfk_audio: np.ndarray) -> None:
    backend = make_backend(jfk_model, quantized=True, endpoint=LONG_PAUSES)
    result = await backend.transcribe_file(jfk_audio, TranscribeOptions())
    assert result.text == JFK_TEXT


async def test_long_files_are_decoded_in_chunks_with_endpoints(
    jfk_model: GeneratedModel, jfk_audio: np.ndarray
) -> None:
    backend = make_backend(jfk_model, max_full_context_s=5.0, endpoint=LONG_PAUSES)
    assert backend.file_chunk_size(11.0) == 64
    result = await backend.transcribe_file(jfk_audio, TranscribeOptions())
    assert result.text == JFK_TEXT
    assert len(result.batch_sizes) == 5  # 11 s in chunks of 64 x 40 ms


async def test_silence_gives_an_empty_result(hello_backend: WenetBackend) -> None:
    result = await hello_backend.transcribe_file(
        np.zeros(16000, dtype=np.float32), TranscribeOptions()
    )
    assert result.text == "" and result.segments == []


@pytest.mark.parametrize("samples", [0, 100, 800])
async def test_too_little_audio_gives_an_empty_result(
    hello_backend: WenetBackend, samples: int
) -> None:
    audio = bursts([("speech", samples / 16000)])
    result = await hello_backend.transcribe_file(audio, TranscribeOptions())
    assert result.text == "" and result.segments == [] and result.batch_sizes == []


async def test_every_segment_replays_after_an_endpoint(hello_model: GeneratedModel) -> None:
    # chunked decoding: the first 2.6 s chunk ends in 2 s of silence -> endpoint, the encoder
    # restarts and the playback script starts over for the second burst
    backend = make_backend(hello_model, max_full_context_s=1.0)
    audio = bursts([("speech", 0.6), ("silence", 2.5), ("speech", 0.6)])
    result = await backend.transcribe_file(audio, TranscribeOptions(word_timestamps=True))
    assert [s.text for s in result.segments] == ["hello world", "hello world"]
    # a unit fires on the first encoder frame whose input reaches into the burst, and its
    # span opens 100 ms before that frame: times are on the stream's clock across the reset
    assert result.segments[0].words[0].start == 0.0
    assert 3.1 - 0.1 - 0.07 < result.segments[1].words[0].start < 3.1 - 0.1 + 0.01


def test_health_follows_the_lifecycle(hello_model: GeneratedModel) -> None:
    manifest = load_manifest(hello_model.directory / "theo.yaml")
    backend = WenetBackend(manifest)
    assert backend.health().state is HealthState.LOADING
    backend.load()
    assert backend.health().state is HealthState.READY
    backend.unload()
    assert backend.health().state is HealthState.LOADING
    broken = WenetBackend(manifest, model_file="missing.zip")
    with pytest.raises(FileNotFoundError, match=r"missing\.zip"):
        broken.load()
    assert broken.health().state is HealthState.FAILED
    assert "missing.zip" in broken.health().detail


def test_units_must_match_the_model(hello_model: GeneratedModel, tmp_path: Path) -> None:
    for name in ("theo.yaml", "final.zip"):
        (tmp_path / name).write_bytes((hello_model.directory / name).read_bytes())
    lines = (hello_model.directory / "units.txt").read_text(encoding="utf-8").splitlines()
    (tmp_path / "units.txt").write_text("\n".join(lines[:-1]), encoding="utf-8")
    backend = WenetBackend(load_manifest(tmp_path / "theo.yaml"))
    with pytest.raises(ValueError, match=f"{len(lines) - 1} units but the model outputs"):
        backend.load()


def test_bad_engine_config_is_rejected(hello_model: GeneratedModel) -> None:
    manifest = load_manifest(hello_model.directory / "theo.yaml")
    with pytest.raises(ValueError, match="decoding_chunk_size"):
        WenetBackend(manifest, decoding_chunk_size=-2)
    with pytest.raises(ValueError, match="not_a_setting"):
        WenetBackend(manifest, not_a_setting=1)
