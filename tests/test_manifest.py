from __future__ import annotations

from pathlib import Path

import pytest

from engines.manifest import Architecture, ManifestError, load_manifest
from engines.registry import ModelRegistry

VALID = """
name: whisper-small
version: "2"
engine: faster-whisper
type: stt
description: test model
capabilities:
  architecture: encoder-decoder
  streaming: true
  languages: [en, pt]
  word_timestamps: true
  translation: true
resources: {memory_mb: 900, gpu_required: false, gpu_recommended: true}
engine_config: {model_path: weights, compute_type: int8}
"""


def write(dir_: Path, name: str, text: str) -> Path:
    (dir_ / name).mkdir(parents=True, exist_ok=True)
    path = dir_ / name / "theo.yaml"
    path.write_text(text)
    return path


def test_valid_manifest_parses_with_relative_model_path(tmp_path: Path) -> None:
    path = write(tmp_path, "small", VALID)
    manifest = load_manifest(path)
    assert manifest.engine == "faster-whisper"
    assert manifest.capabilities.architecture is Architecture.ENCODER_DECODER
    assert manifest.capabilities.languages == ["en", "pt"]
    assert manifest.resources.memory_mb == 900
    assert manifest.model_path() == tmp_path / "small" / "weights"
    assert manifest.supports_language("pt") and not manifest.supports_language("de")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (VALID.replace("faster-whisper", "kaldi"), "engine"),
        (VALID.replace("encoder-decoder", "rnnt"), "capabilities.architecture"),
        (VALID.replace("memory_mb: 900", "memory_mb: -1"), "resources.memory_mb"),
        (VALID.replace("type: stt", "type: tts"), "type"),
        (VALID + "\nunknown_key: 1\n", "unknown_key"),
        (VALID.replace("name: whisper-small", "name: 'bad name!'"), "name"),
        ("name: [unclosed", "<yaml>"),
        ("- a list", "<root>"),
    ],
)
def test_invalid_manifest_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, "bad", text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.field == field
    assert info.value.path == path
    assert str(path) in str(info.value)


def test_registry_skips_invalid_and_duplicate_models_but_keeps_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "a-good", VALID)
    write(tmp_path, "b-bad", VALID.replace("faster-whisper", "nope"))
    write(tmp_path, "c-dup", VALID)
    registry = ModelRegistry.scan(tmp_path)
    assert registry.names() == ["whisper-small"]
    assert [e.field for e in registry.errors] == ["engine", "name"]


def test_registry_of_missing_dir_is_empty(tmp_path: Path) -> None:
    assert ModelRegistry.scan(tmp_path / "absent").names() == []
