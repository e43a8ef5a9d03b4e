"""Deployment settings of an engine, declared by the engine (its `EngineSpec.settings`).

`serve.settings.TheoSettings` has one field per registered engine, named by the engine's key,
so `THEO_<KEY>__<FIELD>` sets them (e.g. `THEO_WHISPER__MAX_BATCH_SIZE`). Plain pydantic:
nothing here knows Ray or Serve; the builder turns these into Serve deployment options.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AutoscalingSettings(BaseModel):
    """Serve replica autoscaling for one deployment (maps to Serve's `autoscaling_config`)."""

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    target_ongoing_requests: float = Field(default=2.0, gt=0)
    upscale_delay_s: float = Field(default=5.0, ge=0)
    downscale_delay_s: float = Field(default=30.0, ge=0)
    look_back_period_s: float = Field(default=30.0, gt=10.0)
    """Seconds of load averaged per decision. Replicas push their load every 10 s (Serve's
    interval; Ray 2.60 deprecates the per-deployment `metrics_interval_s`, so the builder no
    longer sets it), and Serve wants a longer window than that."""


class DeploymentSettings(BaseModel):
    """Replica count, concurrency and Ray resources of one Serve deployment."""

    num_replicas: int = Field(default=1, ge=1)
    autoscaling: AutoscalingSettings | None = None
    max_ongoing_requests: int = Field(default=64, ge=1)
    max_queued_requests: int = Field(default=-1, ge=-1)
    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    graceful_shutdown_timeout_s: float = Field(default=60.0, ge=0)
    max_replicas_per_node: int | None = Field(default=None, ge=1)
    """Most replicas of this deployment on one Ray node (None: no limit)."""


class EngineSettings(DeploymentSettings):
    """An engine deployment: it asks Ray for `{<engine resource>: custom_resource}` per replica."""

    custom_resource: float = Field(default=1.0, gt=0)
    max_queued_requests: int = Field(default=512, ge=-1)
    """Calls waiting for a full replica beyond this are refused: clients get 503 + Retry-After."""
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = Field(default=0, ge=0)
    """Threads per replica for the engine's kernels; 0 lets the engine choose."""

    def backend_overrides(self) -> dict[str, Any]:
        """Keyword arguments for the engine's backend constructor (threads, device...), which
        win over the manifest's `engine_config`. None by default: an engine maps the fields
        its backend understands."""
        return {}
