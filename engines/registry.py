"""Finds models: every `<models_dir>/<name>/theo.yaml`. Bad manifests are reported, not fatal."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from engines.manifest import MANIFEST_FILENAME, ManifestError, ModelManifest, load_manifest

logger = logging.getLogger(__name__)


@dataclass
class ModelRegistry:
    models: dict[str, ModelManifest] = field(default_factory=dict)
    errors: list[ManifestError] = field(default_factory=list)

    @classmethod
    def scan(cls, models_dir: Path) -> ModelRegistry:
        registry = cls()
        if not models_dir.is_dir():
            return registry
        for path in sorted(models_dir.glob(f"*/{MANIFEST_FILENAME}")):
            try:
                manifest = load_manifest(path)
            except ManifestError as exc:
                logger.warning("skipping model: %s", exc)
                registry.errors.append(exc)
                continue
            if manifest.name in registry.models:
                dup = ManifestError(path, "name", f"duplicate model name {manifest.name!r}")
                logger.warning("skipping model: %s", dup)
                registry.errors.append(dup)
                continue
            registry.models[manifest.name] = manifest
        return registry

    def get(self, name: str) -> ModelManifest | None:
        return self.models.get(name)

    def names(self) -> list[str]:
        return sorted(self.models)
