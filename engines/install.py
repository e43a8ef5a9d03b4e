"""Installing a model directory into the models directory (`theo models add`, `theo pull URL`).

A directory with a `theo.yaml` is validated and copied as it is. A folder without one gets the
manifest of the registered engine that recognises it (`EngineSpec.bare_model`; WeNet: its
`final.zip` or ONNX files plus `units.txt`).
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

from engines.manifest import (
    MANIFEST_FILENAME,
    ManifestError,
    ModelManifest,
    load_manifest,
    write_manifest,
)
from engines.spec import load_object, registered_engines


class InstallError(RuntimeError):
    pass


def bare_manifest(directory: Path, name: str, language: str) -> ModelManifest | None:
    """The manifest of a model folder without `theo.yaml`, from the first registered engine
    that recognises it (`EngineSpec.bare_model`), or None."""
    for spec in registered_engines().values():
        if spec.bare_model is None:
            continue
        try:
            manifest: ModelManifest | None = load_object(spec.bare_model)(name, directory, language)
        except ValueError as exc:
            raise InstallError(str(exc)) from None
        if manifest is not None:
            return manifest
    return None


def _model_root(source: Path, name: str | None, language: str) -> tuple[Path, ModelManifest | None]:
    """The folder holding the model: `source`, or its single subfolder (tarball layout), and
    the manifest an engine generated for it when it has no `theo.yaml`."""
    if (source / MANIFEST_FILENAME).exists():
        return source, None
    generated = bare_manifest(source, name or source.name, language)
    if generated is not None:
        return source, generated
    children = [p for p in source.iterdir() if p.is_dir()]
    if len(children) == 1:
        return _model_root(children[0], name, language)
    installers = [spec.name for spec in registered_engines().values() if spec.bare_model]
    raise InstallError(
        f"{source}: no theo.yaml, and no model export that a registered engine recognises "
        f"(engines installing bare exports: {', '.join(installers) or 'none'})"
    )


def add_model_dir(
    source: Path, models_dir: Path, *, name: str | None = None, language: str = "en"
) -> Path:
    """Copy a model folder into `models_dir/<name>` and return its manifest path."""
    root, generated = _model_root(source, name, language)
    if generated is None:
        try:
            manifest = load_manifest(root / MANIFEST_FILENAME)
        except ManifestError as exc:
            raise InstallError(str(exc)) from None
    else:
        manifest = generated
    manifest = manifest.model_copy(update={"name": name or manifest.name})
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
