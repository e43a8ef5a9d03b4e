"""What every engine deployment answers besides transcription: health and metrics."""

from __future__ import annotations

from engines.base import HealthState, STTBackend
from serve.telemetry.metrics import EngineMetrics


class EngineOps:
    """Mixed into engine deployments; Serve calls `check_health`, the gateway the rest."""

    backend: STTBackend
    metrics: EngineMetrics

    async def health(self) -> dict[str, str]:
        state = self.backend.health()
        return {"state": state.state.value, "detail": state.detail}

    def check_health(self) -> None:
        state = self.backend.health()
        if state.state is not HealthState.READY:
            name = self.backend.manifest.name
            raise RuntimeError(f"{name}: backend not ready: {state.detail}")

    async def metrics_text(self) -> str:
        return self.metrics.exposition()
