"""WeNet's TorchScript export (`final.zip` / `final_quant.zip` from `export_jit.py`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engines.wenet.features import Features
from engines.wenet.model import EncoderState, LogProbs, ModelInfo
from engines.wenet.rescoring import decoder_scores, pad_hypotheses

logger = logging.getLogger(__name__)


def configure_torch(num_threads: int, num_interop_threads: int, jit_optimize: bool) -> None:
    """Process-wide torch settings; one model per replica process, so they are ours to set."""
    import torch

    torch.set_num_threads(num_threads)
    try:
        torch.set_num_interop_threads(num_interop_threads)
    except RuntimeError:  # already set, or parallel work already ran in this process
        logger.debug("inter-op threads already fixed at %d", torch.get_num_interop_threads())
    torch._C._set_graph_executor_optimize(jit_optimize)


class TorchScriptModel:
    def __init__(self, path: Path, vocab_size: int) -> None:
        import torch

        if "quant" in path.name:
            engines = torch.backends.quantized.supported_engines
            for engine in ("x86", "fbgemm", "qnnpack"):
                if engine in engines:
                    torch.backends.quantized.engine = engine
                    break
        self._torch = torch
        self._module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        self._module.eval()
        m = self._module
        self.info = ModelInfo(
            subsampling_rate=int(m.subsampling_rate()),
            right_context=int(m.right_context()),
            sos=int(m.sos_symbol()),
            eos=int(m.eos_symbol()),
            bidirectional_decoder=bool(m.is_bidirectional_decoder()),
            vocab_size=vocab_size,
            has_decoder=hasattr(m, "forward_attention_decoder"),
        )
        self._empty = torch.zeros(0, 0, 0, 0)

    def forward_chunk(
        self, state: EncoderState, feats: Features, required_cache_size: int, keep_output: bool
    ) -> LogProbs:
        torch = self._torch
        if feats.shape[0] < self.info.right_context + 1:
            return np.zeros((0, self.info.vocab_size), dtype=np.float32)
        xs = torch.from_numpy(np.ascontiguousarray(feats)).unsqueeze(0)
        att = self._empty if state.att_cache is None else state.att_cache
        cnn = self._empty if state.cnn_cache is None else state.cnn_cache
        with torch.inference_mode():
            out, state.att_cache, state.cnn_cache = self._module.forward_encoder_chunk(
                xs, state.offset, required_cache_size, att, cnn
            )
            logp = self._module.ctc_activation(out)[0]
        state.offset += int(out.size(1))
        if keep_output:
            state.encoder_out.append(out)
        result: LogProbs = logp.numpy().astype(np.float32, copy=False)
        return result

    def rescore(
        self, state: EncoderState, hyps: Sequence[Sequence[int]], reverse_weight: float
    ) -> list[float]:
        torch = self._torch
        info = self.info
        if not hyps or not state.encoder_out or not info.has_decoder:
            return [0.0] * len(hyps)
        padded, lens = pad_hypotheses(hyps, info.sos, info.eos)
        encoder_out = torch.cat(state.encoder_out, dim=1)
        weight = reverse_weight if info.bidirectional_decoder else 0.0
        with torch.inference_mode():
            logp, r_logp = self._module.forward_attention_decoder(
                torch.from_numpy(padded), torch.from_numpy(lens), encoder_out, weight
            )
        return decoder_scores(logp, r_logp, hyps, eos=info.eos, reverse_weight=weight)

    def close(self) -> None:
        self._module = None
