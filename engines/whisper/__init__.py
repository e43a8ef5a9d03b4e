"""faster-whisper (CTranslate2) engine: encoder-decoder, windows batched across requests.

This module is the engine's declaration (`SPEC`, registered in `pyproject.toml`) and its
deployment settings; the backend is `engines.whisper.backend.WhisperBackend`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from engines.settings import EngineSettings
from engines.spec import EngineSpec, Streaming


class WhisperSettings(EngineSettings):
    max_ongoing_requests: int = Field(default=128, ge=1)
    max_batch_size: int = Field(default=8, ge=1)
    batch_wait_timeout_s: float = Field(default=0.05, ge=0)
    beam_size: int = Field(default=5, ge=1)

    def backend_overrides(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "compute_type": self.compute_type,
            "cpu_threads": self.cpu_threads,
            "beam_size": self.beam_size,
        }


SPEC = EngineSpec(
    name="faster-whisper",
    key="whisper",
    backend="engines.whisper.backend:WhisperBackend",
    settings=WhisperSettings,
    # Its own deployment: windows of concurrent requests and sessions decode in one batch.
    deployment="serve.deployments.whisper:WhisperDeployment",
    user_config=("max_batch_size", "batch_wait_timeout_s"),
    extra="whisper",
    image="Dockerfile.whisper",
    streaming=Streaming.REDECODE,
    libraries=("faster_whisper", "ctranslate2"),
    description="faster-whisper (CTranslate2): encoder-decoder, batched 30 s windows",
)
