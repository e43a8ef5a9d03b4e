"""Generated WeNet-format models (built once per session into tmp dirs) and test audio."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engines.manifest import load_manifest
from engines.wenet.backend import WenetBackend
from engines.wenet.testing.audio import load_audio
from engines.wenet.testing.generate import GeneratedModel, generate_model

AUDIO_DIR = Path(__file__).resolve().parents[3] / "shared" / "audio"
JFK_SCRIPT = (
    "And so my fellow Americans, ask not what your {country|cuntry} can do for you,"
    " ask what you can do for your country."
)
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you,"
    " ask what you can do for your country."
)
LONG_PAUSES = {"rules": [{"must_decode_something": True, "min_trailing_silence_ms": 2000}]}
"""jfk.wav pauses for ~1.2 s twice; with this rule it is one utterance."""


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def jfk_audio() -> np.ndarray:
    return load_audio(AUDIO_DIR / "jfk.wav")


@pytest.fixture(scope="session")
def jfk_model(tmp_path_factory: pytest.TempPathFactory, jfk_audio: np.ndarray) -> GeneratedModel:
    """Plays back JFK's sentence over jfk.wav's speech; `country` has the alternative
    `cuntry` the first time."""
    return generate_model(
        tmp_path_factory.mktemp("jfk"),
        playback=JFK_SCRIPT,
        fit_audio=jfk_audio,
        quantize=True,
        name="wenet-jfk",
    )


@pytest.fixture(scope="session")
def hello_model(tmp_path_factory: pytest.TempPathFactory) -> GeneratedModel:
    """Says "hello world" over the first 6 encoder frames of speech of each segment."""
    return generate_model(
        tmp_path_factory.mktemp("hello"), playback="hello world", frames_per_token=2
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> GeneratedModel:
    """Random weights, x6 subsampling, attention rescoring on."""
    return generate_model(tmp_path_factory.mktemp("tiny"), subsampling_rate=6, seed=3)


def make_backend(model: GeneratedModel, **overrides: Any) -> WenetBackend:
    manifest = load_manifest(model.directory / "theo.yaml")
    backend = WenetBackend(manifest, **overrides)
    backend.load()
    return backend


@pytest.fixture(scope="session")
def jfk_backend(jfk_model: GeneratedModel) -> Iterator[WenetBackend]:
    backend = make_backend(jfk_model, endpoint=LONG_PAUSES)
    yield backend
    backend.unload()


@pytest.fixture(scope="session")
def hello_backend(hello_model: GeneratedModel) -> Iterator[WenetBackend]:
    backend = make_backend(hello_model)
    yield backend
    backend.unload()
