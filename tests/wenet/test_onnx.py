"""WeNet's 3-file ONNX export behind the same interface as the TorchScript one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.base import TranscribeOptions
from engines.wenet.chunking import ChunkSchedule, FeatureQueue
from engines.wenet.model import EncoderState
from engines.wenet.onnx_model import OnnxModel
from engines.wenet.testing.audio import bursts
from engines.wenet.testing.generate import GeneratedModel, build_u2, generate_model
from engines.wenet.testing.modules import TINY
from engines.wenet.torchscript import TorchScriptModel
from tests.wenet.conftest import make_backend

SEED = 4


@pytest.fixture(scope="module")
def growing(tmp_path_factory: pytest.TempPathFactory) -> GeneratedModel:
    """Exported for 16-frame chunks with all history (the cache grows)."""
    return generate_model(
        tmp_path_factory.mktemp("onnx16"), seed=SEED, onnx=(16, -1), quantize=True
    )


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> GeneratedModel:
    """Exported for 8-frame chunks with 2 chunks of history (fixed cache, mask)."""
    return generate_model(tmp_path_factory.mktemp("onnx8"), seed=SEED, onnx=(8, 2))


def features(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(2)
    return (rng.standard_normal((int(seconds * 100), 80)) * 2 + 10).astype(np.float32)


def test_onnx_and_torchscript_exports_agree(growing: GeneratedModel) -> None:
    vocab = len(growing.units)
    script = TorchScriptModel(growing.directory / "final.zip", vocab)
    onnx = OnnxModel(growing.directory, vocab)
    assert onnx.info.fixed_chunk_size is None and onnx.info.fixed_num_left_chunks == -1
    assert (onnx.info.subsampling_rate, onnx.info.right_context) == (4, 6)
    assert (onnx.info.sos, onnx.info.eos) == (script.info.sos, script.info.eos)
    schedule = ChunkSchedule(16, 4, 6)
    queue = FeatureQueue(schedule, 80)
    queue.push(features(3.0))
    a, b = EncoderState(), EncoderState()
    chunks = 0
    while (xs := queue.next_chunk(input_finished=True)) is not None:
        expected = script.forward_chunk(a, xs, -1, keep_output=True)
        got = onnx.forward_chunk(b, xs, -1, keep_output=True)
        assert got.shape == expected.shape
        assert np.allclose(got, expected, atol=1e-4)
        chunks += 1
    assert chunks == 5 and a.offset == b.offset == 74  # the last chunk is a 10-frame tail
    hyps = [[5, 6, 7], [5], [9, 9]]
    assert np.allclose(onnx.rescore(b, hyps, 0.0), script.rescore(a, hyps, 0.0), atol=1e-3)


async def test_onnx_backend_decodes_like_torchscript(growing: GeneratedModel) -> None:
    audio = bursts([("speech", 2.0), ("silence", 0.5)], seed=9)
    by_format = {}
    for model_format in ("torchscript", "onnx"):
        backend = make_backend(growing, model_format=model_format)
        stream = backend.open_stream("s", TranscribeOptions())
        updates = backend.accept(stream, audio) + backend.finish(stream)
        result = await backend.transcribe_file(audio, TranscribeOptions())
        by_format[model_format] = ([u.text for u in updates], result.text)
    assert by_format["onnx"] == by_format["torchscript"]
    assert by_format["onnx"][1]  # the random model does say something


async def test_quantized_onnx_loads(growing: GeneratedModel) -> None:
    assert (growing.directory / "encoder.quant.onnx").is_file()
    backend = make_backend(growing, model_format="onnx", quantized=True)
    result = await backend.transcribe_file(bursts([("speech", 1.0)]), TranscribeOptions())
    assert isinstance(result.text, str) and result.duration == 1.0


def test_fixed_cache_export_is_fed_wenet_style(fixed: GeneratedModel) -> None:
    onnx = OnnxModel(fixed.directory, len(fixed.units))
    assert (onnx.info.fixed_chunk_size, onnx.info.fixed_num_left_chunks) == (8, 2)
    weights = build_u2(TINY, len(fixed.units), 4, SEED)  # the same seed: the same model
    schedule = ChunkSchedule(8, 4, 6, num_left_chunks=2)
    queue = FeatureQueue(schedule, 80)
    queue.push(features(2.0))
    state = EncoderState()
    att = torch.zeros(2, 2, 16, 32)
    cnn = torch.zeros(2, 1, 32, 4)
    offset = 16
    index = 0
    while (xs := queue.next_chunk(input_finished=False)) is not None:
        got = onnx.forward_chunk(state, xs, 16, keep_output=True)
        mask = torch.ones(1, 1, 24, dtype=torch.bool)
        mask[:, :, : max(0, 2 - index) * 8] = False  # cache slots not filled yet
        with torch.no_grad():
            out, att, cnn = weights.encoder.forward_chunk(
                torch.from_numpy(xs)[None], offset, 16, att, cnn, mask
            )
            expected = torch.log_softmax(weights.ctc(out), dim=-1)[0].numpy()
        assert np.allclose(got, expected, atol=1e-4), index
        assert state.att_cache.shape == (2, 2, 16, 32)
        offset += 8
        index += 1
    assert index == 6 and state.offset == 16 + 6 * 8  # 200 frames: 35 + 5 x 32


def test_backend_uses_the_exported_chunking(fixed: GeneratedModel) -> None:
    backend = make_backend(fixed, model_format="onnx")  # manifest says 16 / -1
    stream = backend.open_stream("s", TranscribeOptions())
    assert stream.decoder.schedule.chunk_size == 8
    assert stream.decoder.schedule.num_left_chunks == 2
    backend.accept(stream, bursts([("speech", 1.0)]))
    assert stream.stats.chunks == 2  # 98 frames: 35, then 32 (+ 31 waiting)


def test_missing_onnx_files_fail_the_load(tmp_path: Path, growing: GeneratedModel) -> None:
    backend_dir = tmp_path / "m"
    backend_dir.mkdir()
    for name in ("theo.yaml", "units.txt", "encoder.onnx"):
        (backend_dir / name).write_bytes((growing.directory / name).read_bytes())
    from engines.manifest import load_manifest
    from engines.wenet.backend import WenetBackend

    backend = WenetBackend(load_manifest(backend_dir / "theo.yaml"), model_format="onnx")
    with pytest.raises(FileNotFoundError, match=r"ctc\.onnx"):
        backend.load()
