"""Realtime test fixtures: the bundled whisper-tiny.en manifest and a loaded bare backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.manifest import ModelManifest, load_manifest
from engines.whisper.backend import WhisperBackend


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> ModelManifest:
    from engines.bundled import install_tiny_en

    path: Path = install_tiny_en(tmp_path_factory.mktemp("rt-models"))
    return load_manifest(path)


@pytest.fixture(scope="session")
def tiny_backend(tiny_manifest: ModelManifest) -> WhisperBackend:
    backend = WhisperBackend(tiny_manifest, cpu_threads=2)
    backend.load()
    return backend
