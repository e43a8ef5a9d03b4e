"""WeNet CTC engine: reads WeNet's exported TorchScript (or ONNX) model and runs WeNet's
streaming recipe in-process: fbank -> chunked encoder with caches -> CTC prefix beam search
with a hot-word context graph -> endpointing -> optional attention rescoring.

This module is the engine's declaration (`SPEC`, registered in `pyproject.toml`) and its
deployment settings; the backend is `engines.wenet.backend.WenetBackend`. Nothing in this
package imports torch, kaldi_native_fbank or onnxruntime at module level; the engine libraries
are imported when a model is loaded (`engines.wenet.testing` excepted: it is test tooling that
builds models).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from engines.settings import EngineSettings
from engines.spec import EngineSpec, Streaming


class WenetSettings(EngineSettings):
    """`cpu_threads` is how many decodes a replica runs at once (its streams' chunks), each on
    one torch thread (the manifest's `num_threads`, 1 by default): a chunk is too small for
    intra-op threads to pay, and their spinning takes CPU from everything else (16 streams of
    the standard conformer on 2 cores: p95 step 52 ms at 104 % CPU with one thread per step,
    134 ms at 145 % with two)."""

    max_ongoing_requests: int = Field(default=256, ge=1)
    graceful_shutdown_timeout_s: float = Field(default=300.0, ge=0)

    def backend_overrides(self) -> dict[str, Any]:
        return {}


SPEC = EngineSpec(
    name="wenet",
    key="wenet",
    backend="engines.wenet.backend:WenetBackend",
    settings=WenetSettings,
    extra="wenet",
    image="Dockerfile.wenet",
    streaming=Streaming.NATIVE,
    libraries=("torch", "kaldi_native_fbank", "onnxruntime"),
    description="WeNet CTC (TorchScript or ONNX export): native streaming partials",
    bare_model="engines.wenet.manifests:bare_export_manifest",
)
