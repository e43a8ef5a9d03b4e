"""Build, script and save a generated model directory with its manifest."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from engines.manifest import ModelManifest, Resources, write_manifest
from engines.wenet.features import NUM_MEL_BINS, fbank
from engines.wenet.manifests import ENGINE, wenet_capabilities
from engines.wenet.testing.modules import (
    SIZES,
    AttentionDecoder,
    Encoder,
    GlobalCmvn,
    ModelSize,
    U2Model,
)
from engines.wenet.testing.playback import PlaybackModel, speech_mask
from engines.wenet.testing.vocab import (
    letter_units,
    parse_script,
    plain_text,
    playback_units,
    units_txt,
)

STANDARD_VOCAB = 5002
TINY_VOCAB = 64
DEFAULT_SPEECH_THRESHOLD = 15.0
RIGHT_CONTEXT = {4: 6, 6: 10}


@dataclass
class GeneratedModel:
    directory: Path
    manifest: ModelManifest
    units: list[str]
    transcript: str | None = None
    """What a playback model says without hot words."""
    frames_per_token: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def build_u2(size: ModelSize, vocab: int, rate: int, seed: int) -> U2Model:
    torch.manual_seed(seed)
    cmvn = GlobalCmvn(torch.full((NUM_MEL_BINS,), 10.0), torch.full((NUM_MEL_BINS,), 0.25))
    encoder = Encoder(NUM_MEL_BINS, size, rate, cmvn)
    decoder = AttentionDecoder(vocab, size)
    model = U2Model(encoder, vocab, decoder, sos=vocab - 1, eos=vocab - 1)
    return model.eval()


def speech_frames(audio: npt.NDArray[np.float32], rate: int, threshold: float) -> int:
    """Encoder frames of speech a playback model sees in `audio` decoded in one pass."""
    feats = torch.from_numpy(fbank(audio)).unsqueeze(0)
    context = RIGHT_CONTEXT[rate]
    frames = max(0, (feats.size(1) - context - 1) // rate + 1)
    return int(speech_mask(feats, rate, context, threshold, frames).sum())


def fit_frames_per_token(
    audio: npt.NDArray[np.float32], steps: int, rate: int, threshold: float
) -> int:
    """Spread `steps` units evenly over the speech of `audio`."""
    return max(1, speech_frames(audio, rate, threshold) // steps)


def save_script(model: nn.Module, path: Path) -> None:
    """What WeNet's `export_jit.py` does: script the whole model and save it."""
    scripted = torch.jit.script(model)
    scripted.save(str(path))  # type: ignore[no-untyped-call]


def engine_config(playback: bool, overrides: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model_path": ".",
        "decoding_chunk_size": 16,
        "num_left_chunks": -1,
        # a random attention decoder would only scramble the playback script
        "rescoring_weight": 0.0 if playback else 1.0,
        "context_score": 3.0,
        "num_threads": 1,
    }
    config.update(overrides)
    return config


def generate_model(
    directory: Path,
    *,
    size: str = "tiny",
    playback: str | None = None,
    subsampling_rate: int = 4,
    frames_per_token: int = 4,
    fit_audio: npt.NDArray[np.float32] | None = None,
    speech_threshold: float = DEFAULT_SPEECH_THRESHOLD,
    quantize: bool = False,
    name: str | None = None,
    language: str = "en",
    seed: int = 0,
    config_overrides: dict[str, Any] | None = None,
    onnx: tuple[int, int] | None = None,
) -> GeneratedModel:
    """Write `final.zip` (+ `final_quant.zip`), `units.txt` and `theo.yaml` into `directory`.

    `onnx=(chunk_size, left_chunks)` also writes WeNet's ONNX export of the same weights
    (`encoder.onnx`, `ctc.onnx`, `decoder.onnx`; not for playback models)."""
    model_size = SIZES[size]
    directory.mkdir(parents=True, exist_ok=True)
    transcript: str | None = None
    if playback is None:
        units = letter_units(STANDARD_VOCAB if size == "standard" else TINY_VOCAB)
        model: nn.Module = build_u2(model_size, len(units), subsampling_rate, seed)
        frames_per_token = 0
    else:
        script = parse_script(playback)
        units = playback_units(script)
        ids = {u: i for i, u in enumerate(units)}
        if fit_audio is not None:
            frames_per_token = fit_frames_per_token(
                fit_audio, len(script.primary), subsampling_rate, speech_threshold
            )
        base = build_u2(model_size, len(units), subsampling_rate, seed)
        model = PlaybackModel(
            base,
            [ids[u] for u in script.primary],
            [ids[a] if a is not None else -1 for a in script.alternative],
            blank=0,
            vocab=len(units),
            frames_per_token=frames_per_token,
            speech_threshold=speech_threshold,
        ).eval()
        transcript = plain_text(playback)
    save_script(model, directory / "final.zip")
    if onnx is not None:
        if not isinstance(model, U2Model):
            raise ValueError("only plain models export to ONNX, not playback models")
        from engines.wenet.testing.onnx_export import export_onnx

        export_onnx(model, directory, chunk_size=onnx[0], left_chunks=onnx[1], quantize=quantize)
    if quantize:
        with warnings.catch_warnings():  # torch deprecates the qint8 API export_jit.py uses
            warnings.simplefilter("ignore", UserWarning)
            quantized = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model, {nn.Linear}, dtype=torch.qint8
            )
        save_script(quantized, directory / "final_quant.zip")
    (directory / "units.txt").write_text(units_txt(units), encoding="utf-8")
    size_mb = (directory / "final.zip").stat().st_size / 2**20
    manifest = ModelManifest(
        name=name or (f"wenet-playback-{size}" if playback else f"wenet-{size}"),
        engine=ENGINE,
        description=(
            f"Generated {size} WeNet-format conformer, random weights"
            + (" (playback model)" if playback else "")
        ),
        capabilities=wenet_capabilities(language),
        resources=Resources(memory_mb=int(64 + 4 * size_mb)),
        engine_config=engine_config(playback is not None, config_overrides or {}),
    )
    write_manifest(manifest, directory)
    return GeneratedModel(directory, manifest, units, transcript, frames_per_token)
