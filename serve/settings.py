"""Service settings: environment variables prefixed `THEO_`, nested with `__`.

Example: `THEO_WHISPER__MAX_BATCH_SIZE=16`, `THEO_API_KEYS=key1,key2`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class AutoscalingSettings(BaseModel):
    """Serve replica autoscaling for one deployment (maps to Serve's `autoscaling_config`)."""

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    target_ongoing_requests: float = Field(default=2.0, gt=0)
    upscale_delay_s: float = Field(default=5.0, ge=0)
    downscale_delay_s: float = Field(default=30.0, ge=0)
    metrics_interval_s: float = Field(default=2.0, gt=0)
    look_back_period_s: float = Field(default=10.0, gt=0)


class DeploymentSettings(BaseModel):
    """Replica count, concurrency and Ray resources of one Serve deployment."""

    num_replicas: int = Field(default=1, ge=1)
    autoscaling: AutoscalingSettings | None = None
    max_ongoing_requests: int = Field(default=64, ge=1)
    max_queued_requests: int = Field(default=-1, ge=-1)
    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    graceful_shutdown_timeout_s: float = Field(default=60.0, ge=0)


class EngineSettings(DeploymentSettings):
    """An engine deployment: it asks Ray for `{<engine resource>: custom_resource}` per replica."""

    custom_resource: float = Field(default=1.0, gt=0)
    max_queued_requests: int = Field(default=512, ge=-1)
    """Calls waiting for a full replica beyond this are refused: clients get 503 + Retry-After."""
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = Field(default=0, ge=0)
    """Threads per replica for the engine's kernels; 0 lets the engine choose."""


class WhisperSettings(EngineSettings):
    max_ongoing_requests: int = Field(default=128, ge=1)
    max_batch_size: int = Field(default=8, ge=1)
    batch_wait_timeout_s: float = Field(default=0.05, ge=0)
    beam_size: int = Field(default=5, ge=1)


class WenetSettings(EngineSettings):
    max_ongoing_requests: int = Field(default=256, ge=1)
    graceful_shutdown_timeout_s: float = Field(default=300.0, ge=0)


class GatewaySettings(DeploymentSettings):
    max_ongoing_requests: int = Field(default=1024, ge=1)
    num_cpus: float = Field(default=0.5, ge=0)
    graceful_shutdown_timeout_s: float = Field(default=300.0, ge=0)


def default_models_dir() -> Path:
    return Path.home() / ".theo" / "models"


class TheoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THEO_", env_nested_delimiter="__", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    models_dir: Path = Field(default_factory=default_models_dir)
    models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Models to serve (by manifest name); empty serves every model found."""
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_mb: float = Field(default=25.0, gt=0)
    max_audio_duration_s: float = Field(default=3600.0, gt=0)
    """Longer uploads (decoded duration, not what the file declares) are refused with 400."""
    request_timeout_s: float = Field(default=600.0, gt=0)
    app_name: str = "theo"
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    whisper: WhisperSettings = Field(default_factory=WhisperSettings)
    wenet: WenetSettings = Field(default_factory=WenetSettings)

    @field_validator("models", "api_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
