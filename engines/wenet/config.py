"""`engine_config` of a WeNet model (`theo.yaml`), validated once at backend construction."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EndpointRule(BaseModel):
    """Endpoint when all three hold (WeNet's `CtcEndpointRule`)."""

    model_config = ConfigDict(extra="forbid")

    must_decode_something: bool
    min_trailing_silence_ms: int = Field(ge=0)
    min_utterance_length_ms: int = Field(default=0, ge=0)


def default_rules() -> list[EndpointRule]:
    """WeNet's defaults: 5 s of silence even if nothing was decoded; 1 s of silence after
    speech; 20 s utterance length regardless."""
    return [
        EndpointRule(must_decode_something=False, min_trailing_silence_ms=5000),
        EndpointRule(must_decode_something=True, min_trailing_silence_ms=1000),
        EndpointRule(
            must_decode_something=False, min_trailing_silence_ms=0, min_utterance_length_ms=20000
        ),
    ]


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    blank_threshold: float = Field(default=0.8, gt=0, le=1)
    """A frame counts as silence when its blank posterior exceeds this."""
    rules: list[EndpointRule] = Field(default_factory=default_rules)


class WenetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_path: str = "."
    model_format: Literal["torchscript", "onnx"] = "torchscript"
    """torchscript: `final.zip` (`final_quant.zip` if quantized); onnx: `encoder.onnx`,
    `ctc.onnx`, optional `decoder.onnx` (`*.quant.onnx` if quantized)."""
    model_file: str = "final.zip"
    quantized: bool = False
    quantized_model_file: str = "final_quant.zip"
    units_file: str = "units.txt"

    # -- streaming ------------------------------------------------------------------------
    decoding_chunk_size: int = 16
    """Encoder frames per streaming chunk (x subsampling rate x 10 ms of audio); -1: whole input."""
    num_left_chunks: int = -1
    """Chunks of attention history kept; -1: all of the current segment."""
    emit_empty_partials: bool = False
    """Also send a partial after chunks that decoded nothing yet (silence)."""

    # -- files ----------------------------------------------------------------------------
    file_decoding_chunk_size: int = -1
    """Chunk size for `transcribe_file`; -1 decodes the whole file with full attention."""
    max_full_context_s: float = Field(default=30.0, gt=0)
    """Longer files are decoded in chunks of `long_file_chunk_size` with endpointing."""
    long_file_chunk_size: int = Field(default=64, gt=0)

    # -- search ---------------------------------------------------------------------------
    first_beam_size: int = Field(default=10, ge=1)
    second_beam_size: int = Field(default=10, ge=1)
    blank_id: int | None = None
    """Defaults to the id of `<blank>` in units.txt, else 0."""

    # -- attention rescoring at endpoints ----------------------------------------------
    rescoring_weight: float = Field(default=1.0, ge=0)
    """0 disables rescoring."""
    ctc_weight: float = Field(default=0.5, ge=0)
    reverse_weight: float = Field(default=0.0, ge=0, le=1)

    # -- hot words --------------------------------------------------------------------------
    context_score: float = Field(default=3.0, ge=0)
    """Bonus per matched unit of a hot word."""
    incremental_context_score: float = 0.0
    """Extra bonus for the n-th unit of a match: unit n scores context_score + n * this."""
    max_contexts: int = Field(default=5000, ge=1)
    max_context_length: int = Field(default=100, ge=1)
    context_cache_size: int = Field(default=64, ge=1)

    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)

    # -- output ------------------------------------------------------------------------------
    timestamp_gap_ms: int = Field(default=100, ge=0)
    """Half-width of a unit's time span when its neighbours are further away."""
    lowercase: bool = False
    language: str | None = None

    # -- threads -----------------------------------------------------------------------------
    num_threads: int = Field(default=1, ge=1)
    """Intra-op threads of the shared model (process-wide in torch)."""
    num_interop_threads: int = Field(default=1, ge=1)
    jit_optimize: bool = False
    """TorchScript profiling optimisation; WeNet's runtime turns it off for steady latency."""

    @model_validator(mode="after")
    def _chunk_sizes(self) -> WenetConfig:
        for name in ("decoding_chunk_size", "file_decoding_chunk_size"):
            value = getattr(self, name)
            if value == 0 or value < -1:
                raise ValueError(f"{name} must be a positive frame count or -1")
        return self


def parse_config(engine_config: dict[str, Any], overrides: dict[str, Any]) -> WenetConfig:
    """The manifest's `engine_config` with deployment overrides (falsy overrides ignored)."""
    merged = {**engine_config, **{k: v for k, v in overrides.items() if v}}
    return WenetConfig.model_validate(merged)
