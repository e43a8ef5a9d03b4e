"""Manifests of WeNet models: the capabilities every WeNet export has, and the `theo.yaml`
written for a bare export (`final.zip` or the ONNX files, plus `units.txt`) by
`theo models add` / `theo pull URL`."""

from __future__ import annotations

from pathlib import Path

from engines.manifest import Architecture, Capabilities, ModelManifest

ENGINE = "wenet"
EXPORT_FILES = ("final.zip", "final_quant.zip", "encoder.onnx")


def wenet_capabilities(language: str) -> Capabilities:
    """What the WeNet engine does with any streaming export: native partials, hot words in
    the prefix beam search, word times from the CTC alignment."""
    return Capabilities(
        architecture=Architecture.CTC,
        streaming=True,
        languages=[language],
        word_timestamps=True,
        partial_transcripts=True,
        hot_words=True,
        batch_inference=False,
    )


def bare_export_manifest(name: str, directory: Path, language: str) -> ModelManifest | None:
    """The manifest of a bare WeNet export in `directory`; None if it holds none; ValueError
    for a partial one."""
    if not (directory / "units.txt").exists():
        return None
    if not any((directory / f).exists() for f in EXPORT_FILES):
        raise ValueError(
            f"{directory}: a WeNet export needs units.txt and final.zip or encoder.onnx"
        )
    onnx = not any((directory / f).exists() for f in ("final.zip", "final_quant.zip"))
    quantized = not onnx and not (directory / "final.zip").exists()
    return ModelManifest(
        name=name,
        engine=ENGINE,
        description=f"WeNet export installed from {directory.name}",
        capabilities=wenet_capabilities(language),
        engine_config={
            "model_path": ".",
            "model_format": "onnx" if onnx else "torchscript",
            "quantized": quantized,
        },
    )
