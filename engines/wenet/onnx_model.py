"""WeNet's ONNX export (`export_onnx_cpu.py`): `encoder.onnx`, `ctc.onnx`, `decoder.onnx`
(or their `.quant.onnx` variants), the model's facts in the encoder's metadata.

Inputs are fed by name when the graph has them, as WeNet's runtime does: an export may have
folded `offset` or `required_cache_size` into constants. An export with left chunks keeps
fixed-size caches, starts `offset` at the cache size and masks the cache's unfilled part.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engines.wenet.features import Features
from engines.wenet.model import EncoderState, LogProbs, ModelInfo
from engines.wenet.rescoring import decoder_scores, pad_hypotheses

ENCODER, CTC, DECODER = "encoder", "ctc", "decoder"


def onnx_file(directory: Path, part: str, quantized: bool) -> Path:
    return directory / f"{part}{'.quant' if quantized else ''}.onnx"


class OnnxModel:
    def __init__(
        self, directory: Path, vocab_size: int, *, num_threads: int = 1, quantized: bool = False
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1

        def session(part: str) -> Any:
            return ort.InferenceSession(
                str(onnx_file(directory, part, quantized)),
                options,
                providers=["CPUExecutionProvider"],
            )

        self._encoder = session(ENCODER)
        self._ctc = session(CTC)
        has_decoder = onnx_file(directory, DECODER, quantized).is_file()
        self._decoder = session(DECODER) if has_decoder else None
        meta = self._encoder.get_modelmeta().custom_metadata_map
        self.layers = int(meta["num_blocks"])
        self.heads = int(meta["head"])
        self.d_model = int(meta["output_size"])
        self.kernel = int(meta["cnn_module_kernel"])
        self.chunk_size = int(meta["chunk_size"])
        self.left_chunks = int(meta["left_chunks"])
        self.info = ModelInfo(
            subsampling_rate=int(meta["subsampling_rate"]),
            right_context=int(meta["right_context"]),
            sos=int(meta["sos_symbol"]),
            eos=int(meta["eos_symbol"]),
            bidirectional_decoder=bool(int(meta["is_bidirectional_decoder"])),
            vocab_size=vocab_size,
            has_decoder=has_decoder,
            fixed_chunk_size=self.chunk_size if self.left_chunks > 0 else None,
            fixed_num_left_chunks=self.left_chunks,
        )
        self._encoder_inputs = {i.name for i in self._encoder.get_inputs()}
        self._decoder_inputs = (
            {i.name for i in self._decoder.get_inputs()} if self._decoder is not None else set()
        )

    @property
    def cache_frames(self) -> int:
        """Size of the fixed attention cache (0: the cache grows, or there is none)."""
        return self.chunk_size * self.left_chunks if self.left_chunks > 0 else 0

    @property
    def required_cache_size(self) -> int:
        if self.left_chunks > 0:
            return self.cache_frames
        return -1 if self.left_chunks < 0 else 0

    def _start(self, state: EncoderState) -> None:
        cache = self.cache_frames
        d_k = self.d_model // self.heads
        state.att_cache = np.zeros((self.layers, self.heads, cache, 2 * d_k), dtype=np.float32)
        state.cnn_cache = np.zeros((self.layers, 1, self.d_model, self.kernel - 1), np.float32)
        state.offset = cache

    def attention_mask(self, offset: int, outputs: int) -> np.ndarray:
        """Valid keys of a chunk: the cache's filled part and the chunk's `outputs` frames."""
        cache = self.cache_frames
        mask = np.ones((1, 1, cache + outputs), dtype=bool)
        filled_chunks = offset // self.chunk_size - self.left_chunks
        if filled_chunks < self.left_chunks:
            mask[:, :, : (self.left_chunks - filled_chunks) * self.chunk_size] = False
        return mask

    def forward_chunk(
        self, state: EncoderState, feats: Features, required_cache_size: int, keep_output: bool
    ) -> LogProbs:
        info = self.info
        if feats.shape[0] < info.right_context + 1:
            return np.zeros((0, info.vocab_size), dtype=np.float32)
        if state.att_cache is None:
            self._start(state)
        outputs = (feats.shape[0] - info.right_context - 1) // info.subsampling_rate + 1
        feeds: dict[str, Any] = {
            "chunk": np.ascontiguousarray(feats, dtype=np.float32)[None],
            "offset": np.array(state.offset, dtype=np.int64),
            "required_cache_size": np.array(self.required_cache_size, dtype=np.int64),
            "att_cache": state.att_cache,
            "cnn_cache": state.cnn_cache,
        }
        if self.left_chunks > 0:
            feeds["att_mask"] = self.attention_mask(state.offset, outputs)
        out, state.att_cache, state.cnn_cache = self._encoder.run(
            None, {k: v for k, v in feeds.items() if k in self._encoder_inputs}
        )
        state.offset += int(out.shape[1])
        if keep_output:
            state.encoder_out.append(out)
        logp = self._ctc.run(None, {"hidden": out})[0][0]
        result: LogProbs = np.asarray(logp, dtype=np.float32)
        return result

    def rescore(
        self, state: EncoderState, hyps: Sequence[Sequence[int]], reverse_weight: float
    ) -> list[float]:
        info = self.info
        if not hyps or not state.encoder_out or self._decoder is None:
            return [0.0] * len(hyps)
        padded, lens = pad_hypotheses(hyps, info.sos, info.eos)
        weight = reverse_weight if info.bidirectional_decoder else 0.0
        feeds: dict[str, Any] = {
            "hyps": padded,
            "hyps_lens": lens,
            "encoder_out": np.concatenate(state.encoder_out, axis=1),
            "reverse_weight": np.array(weight, dtype=np.float32),
        }
        logp, r_logp = self._decoder.run(
            None, {k: v for k, v in feeds.items() if k in self._decoder_inputs}
        )
        return decoder_scores(logp, r_logp, hyps, eos=info.eos, reverse_weight=weight)

    def close(self) -> None:
        self._encoder = self._ctc = self._decoder = None
