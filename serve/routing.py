"""Model name -> manifest + engine deployment handle. The gateway's only routing decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engines.manifest import ModelManifest
from serve.errors import ModelNotFoundError


@dataclass(frozen=True)
class RoutedModel:
    manifest: ModelManifest
    handle: Any
    """The Ray Serve `DeploymentHandle` of this model's engine deployment."""

    @property
    def name(self) -> str:
        return self.manifest.name


class ModelRouter:
    def __init__(self, manifests: list[ModelManifest], handles: dict[str, Any]) -> None:
        self._models = {m.name: RoutedModel(m, handles[m.name]) for m in manifests}

    def resolve(self, name: str) -> RoutedModel:
        routed = self._models.get(name)
        if routed is None:
            raise ModelNotFoundError(name)
        return routed

    def models(self) -> list[RoutedModel]:
        return [self._models[name] for name in sorted(self._models)]
