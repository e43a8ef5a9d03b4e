"""Export a generated U2 model the way WeNet's `export_onnx_cpu.py` does: `encoder.onnx`
(`forward_chunk`), `ctc.onnx` (log-softmax head) and `decoder.onnx` (attention rescoring),
with the model's facts in each file's metadata."""

import warnings
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from engines.wenet.testing.modules import ConformerBlock, U2Model


class _EncoderChunk(nn.Module):
    def __init__(self, model: U2Model, required_cache_size: int) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.required_cache_size = required_cache_size

    def forward(
        self, chunk: Tensor, offset: Tensor, att_cache: Tensor, cnn_cache: Tensor, att_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        # a tensor offset keeps positions a graph input instead of a traced constant
        return self.encoder.forward_chunk(
            chunk,
            offset,  # type: ignore[arg-type]
            self.required_cache_size,
            att_cache,
            cnn_cache,
            att_mask,
        )


class _Ctc(nn.Module):
    def __init__(self, model: U2Model) -> None:
        super().__init__()
        self.ctc = model.ctc

    def forward(self, hidden: Tensor) -> Tensor:
        return torch.log_softmax(self.ctc(hidden), dim=-1)


class _Decoder(nn.Module):
    def __init__(self, model: U2Model) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, hyps: Tensor, hyps_lens: Tensor, encoder_out: Tensor
    ) -> tuple[Tensor, Tensor]:
        return self.model.forward_attention_decoder(hyps, hyps_lens, encoder_out, 0.0)


def _export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    axes: dict[str, dict[int, str]],
    metadata: dict[str, str],
) -> None:
    with warnings.catch_warnings():  # the legacy exporter is what WeNet's script uses
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            opset_version=13,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def export_onnx(
    model: U2Model, directory: Path, *, chunk_size: int, left_chunks: int, quantize: bool = False
) -> None:
    """`left_chunks > 0`: fixed-size caches and an attention mask, as WeNet exports them.
    `quantize`: also `*.quant.onnx` (onnxruntime dynamic int8, as WeNet's script does)."""
    encoder = model.encoder
    block = encoder.blocks[0]
    assert isinstance(block, ConformerBlock)
    heads, d_k = block.attn.heads, block.attn.d_k
    layers, d_model = len(encoder.blocks), encoder.d_model
    kernel = block.conv.lorder + 1
    vocab = model.ctc.out_features
    metadata = {
        "output_size": str(d_model),
        "num_blocks": str(layers),
        "head": str(heads),
        "cnn_module_kernel": str(kernel),
        "subsampling_rate": str(encoder.embed.rate),
        "right_context": str(encoder.embed.right_context),
        "sos_symbol": str(model.sos),
        "eos_symbol": str(model.eos),
        "is_bidirectional_decoder": "0",
        "chunk_size": str(chunk_size),
        "left_chunks": str(left_chunks),
        "vocab_size": str(vocab),
    }
    required = chunk_size * left_chunks if left_chunks > 0 else -1
    cache_t = max(required, 0)
    frames = (chunk_size - 1) * encoder.embed.rate + encoder.embed.right_context + 1
    att_mask = torch.ones(1, 1, cache_t + chunk_size, dtype=torch.bool)
    encoder_args = (
        torch.randn(1, frames, 80),
        torch.tensor(cache_t, dtype=torch.int64),
        torch.zeros(layers, heads, cache_t, 2 * d_k),
        torch.zeros(layers, 1, d_model, kernel - 1),
        att_mask if left_chunks > 0 else torch.ones(0, 0, 0, dtype=torch.bool),
    )
    directory.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        _export(
            _EncoderChunk(model, required),
            encoder_args,
            directory / "encoder.onnx",
            ["chunk", "offset", "att_cache", "cnn_cache", "att_mask"],
            ["output", "r_att_cache", "r_cnn_cache"],
            {
                "chunk": {1: "T"},
                "att_cache": {2: "T_CACHE"},
                "att_mask": {2: "T_ADD_T_CACHE"},
                "output": {1: "T"},
                "r_att_cache": {2: "T_CACHE"},
            },
            metadata,
        )
        _export(
            _Ctc(model),
            (torch.randn(1, chunk_size, d_model),),
            directory / "ctc.onnx",
            ["hidden"],
            ["probs"],
            {"hidden": {1: "T"}, "probs": {1: "T"}},
            metadata,
        )
        hyps = torch.randint(0, vocab, (3, 5))
        hyps[:, 0] = model.sos
        _export(
            _Decoder(model),
            (hyps, torch.tensor([5, 4, 2]), torch.randn(1, 20, d_model)),
            directory / "decoder.onnx",
            ["hyps", "hyps_lens", "encoder_out"],
            ["score", "r_score"],
            {
                "hyps": {0: "NBEST", 1: "L"},
                "hyps_lens": {0: "NBEST"},
                "encoder_out": {1: "T"},
                "score": {0: "NBEST", 1: "L"},
            },
            metadata,
        )
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        for part in ("encoder", "ctc", "decoder"):
            quantize_dynamic(
                directory / f"{part}.onnx",
                directory / f"{part}.quant.onnx",
                weight_type=QuantType.QUInt8,
            )
