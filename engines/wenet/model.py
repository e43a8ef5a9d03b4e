"""What the decoder needs from an exported WeNet model, whatever runs it.

One `AsrModel` is shared by every stream of a replica; each stream owns an `EncoderState`
(offset and the model's opaque caches). Implementations: `torchscript.TorchScriptModel`
(`final.zip`) and `onnx_model.OnnxModel` (encoder/ctc/decoder.onnx).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from engines.wenet.features import Features

LogProbs = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ModelInfo:
    subsampling_rate: int
    right_context: int
    sos: int
    eos: int
    bidirectional_decoder: bool
    vocab_size: int
    has_decoder: bool = True
    fixed_chunk_size: int | None = None
    """Set when the export only decodes chunks of this size (ONNX with left chunks)."""
    fixed_num_left_chunks: int | None = None
    """Set when the export baked the attention history in (ONNX)."""


@dataclass
class EncoderState:
    """Per-stream encoder state; reset at each endpoint (a new segment starts cold)."""

    offset: int = 0
    att_cache: Any = None
    cnn_cache: Any = None
    encoder_out: list[Any] = field(default_factory=list)
    """Encoder outputs of the current segment, kept for attention rescoring."""

    def reset(self) -> None:
        self.offset = 0
        self.att_cache = None
        self.cnn_cache = None
        self.encoder_out = []


class AsrModel(Protocol):
    info: ModelInfo

    def forward_chunk(
        self, state: EncoderState, feats: Features, required_cache_size: int, keep_output: bool
    ) -> LogProbs:
        """Encode one chunk (carried + new frames) and return its CTC log-posteriors
        [frames, vocab]; advances `state`."""
        ...

    def rescore(
        self, state: EncoderState, hyps: Sequence[Sequence[int]], reverse_weight: float
    ) -> list[float]:
        """Attention-decoder log-likelihood of each hypothesis (with `<eos>`) given the
        segment's encoder output; zeros when there is none."""
        ...

    def close(self) -> None: ...
