"""Installing a model directory into the models directory (`theo models add`, `theo pull URL`).

A directory with a `theo.yaml` is validated and copied as it is. A bare WeNet export
(`final.zip` or the ONNX files, plus `units.txt`) gets a generated WeNet manifest.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

from engines.manifest import (
    MANIFEST_FILENAME,
    Architecture,
    Capabilities,
    EngineName,
    ManifestError,
    ModelManifest,
    load_manifest,
    write_manifest,
)

WENET_FILES = ("final.zip", "final_quant.zip", "encoder.onnx")


class InstallError(RuntimeError):
    pass


def wenet_manifest(name: str, directory: Path, language: str) -> ModelManifest:
    onnx = not any((directory / f).exists() for f in ("final.zip", "final_quant.zip"))
    quantized = not onnx and not (directory / "final.zip").exists()
    return ModelManifest(
        name=name,
        engine=EngineName.WENET,
        description=f"WeNet export installed from {directory.name}",
        capabilities=Capabilities(
            architecture=Architecture.CTC,
            streaming=True,
            languages=[language],
            word_timestamps=True,
            partial_transcripts=True,
            hot_words=True,
        ),
        engine_config={
            "model_path": ".",
            "model_format": "onnx" if onnx else "torchscript",
            "quantized": quantized,
        },
    )


def _model_root(source: Path) -> Path:
    """The folder holding the model: `source`, or its single subfolder (tarball layout)."""
    if (source / MANIFEST_FILENAME).exists() or (source / "units.txt").exists():
        return source
    children = [p for p in source.iterdir() if p.is_dir()]
    if len(children) == 1:
        return _model_root(children[0])
    raise InstallError(f"{source}: no theo.yaml and no WeNet export (units.txt) found")


def add_model_dir(
    source: Path, models_dir: Path, *, name: str | None = None, language: str = "en"
) -> Path:
    """Copy a model folder into `models_dir/<name>` and return its manifest path."""
    root = _model_root(source)
    manifest_path = root / MANIFEST_FILENAME
    if manifest_path.exists():
        try:
            manifest = load_manifest(manifest_path)
        except ManifestError as exc:
            raise InstallError(str(exc)) from None
        manifest = manifest.model_copy(update={"name": name or manifest.name})
    elif (root / "units.txt").exists() and any((root / f).exists() for f in WENET_FILES):
        manifest = wenet_manifest(name or root.name, root, language)
    else:
        raise InstallError(f"{root}: a WeNet export needs units.txt and final.zip or encoder.onnx")
    target = models_dir / manifest.name
    if target.exists():
        raise InstallError(f"{target} exists; remove it or pick another --name")
    shutil.copytree(root, target, ignore=shutil.ignore_patterns(MANIFEST_FILENAME))
    return write_manifest(manifest, target)


def add_model_archive(
    archive: Path, models_dir: Path, *, name: str | None = None, language: str = "en"
) -> Path:
    """Unpack a model tarball (e.g. WeNet's released exports) and install it."""
    with tempfile.TemporaryDirectory(prefix="theo-model-") as tmp:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise InstallError(f"{archive}: not a readable tar archive ({exc})") from None
        return add_model_dir(Path(tmp), models_dir, name=name, language=language)
