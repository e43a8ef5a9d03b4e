"""The per-model manifest (`theo.yaml`): which engine serves a model and what it can do."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engines.spec import engine_spec

MANIFEST_FILENAME = "theo.yaml"


class Architecture(StrEnum):
    """How the model decodes (informational: listings, docs). Behaviour is chosen by what the
    engine and the capabilities declare, never by architecture."""

    ENCODER_DECODER = "encoder-decoder"
    CTC = "ctc"


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="forbid")

    architecture: Architecture
    streaming: bool = False
    """The model keeps streaming decoder state: realtime partials come from the engine itself
    when its engine streams natively (`engines.spec.streams_natively`); otherwise ignored."""
    languages: list[str] = Field(default_factory=list)
    word_timestamps: bool = False
    translation: bool = False
    partial_transcripts: bool = False
    hot_words: bool = False
    batch_inference: bool = False
    language_detection: bool = False
    initial_prompt: bool = False


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memory_mb: int = Field(default=0, ge=0)
    gpu_required: bool = False
    gpu_recommended: bool = False


class ModelSource(BaseModel):
    """Where a model's weights come from (`theo pull`): what was asked for and what was got."""

    model_config = ConfigDict(extra="forbid")

    uri: str
    """As given to `theo pull`: an alias (`whisper-base`), a Hugging Face repo id or a URL."""
    revision: str | None = None
    """The hub revision asked for: a 40-hex commit pins the weights; a branch or tag (or None,
    the default branch) follows the repository."""
    commit: str | None = None
    """The hub commit that was pulled (None until pulled, and for URLs)."""
    sha256: dict[str, str] = Field(default_factory=dict)
    """sha256 of each file pulled, by path relative to the model's directory (for a URL: of
    the archive)."""


class ModelManifest(BaseModel):
    """A validated `theo.yaml`. `directory` is where it was found (not part of the file)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    version: str = "1"
    engine: str
    """A registered engine's name (`engines.spec.registered_engines`)."""
    type: Literal["stt"] = "stt"
    description: str = ""
    capabilities: Capabilities
    resources: Resources = Field(default_factory=Resources)
    engine_config: dict[str, Any] = Field(default_factory=dict)
    source: ModelSource | None = None
    """Where `theo pull` got the weights from; an engine replica that finds its model missing
    pulls it from here (a pod with its own storage that started before the model was added)."""
    directory: Path | None = Field(default=None, exclude=True)

    @field_validator("engine")
    @classmethod
    def _registered(cls, engine: str) -> str:
        engine_spec(engine)  # raises UnknownEngineError (a ValueError) naming the known ones
        return engine

    def model_path(self) -> Path:
        """The engine's weights: `engine_config.model_path`, relative to the manifest's folder."""
        raw = str(self.engine_config.get("model_path", "."))
        path = Path(raw).expanduser()
        if not path.is_absolute() and self.directory is not None:
            path = self.directory / path
        return path

    def supports_language(self, language: str) -> bool:
        langs = self.capabilities.languages
        return not langs or language in langs


class ManifestError(Exception):
    """A manifest that cannot be used, with the file and the offending field."""

    def __init__(self, path: Path, field: str, message: str) -> None:
        self.path = path
        self.field = field
        self.message = message
        super().__init__(f"{path}: {field}: {message}")


def parse_manifest(data: object, path: Path) -> ModelManifest:
    """Validate manifest data read from `path`; raise `ManifestError` naming the first bad field."""
    if not isinstance(data, dict):
        raise ManifestError(path, "<root>", "manifest must be a mapping")
    try:
        manifest = ModelManifest.model_validate({k: v for k, v in data.items() if k != "directory"})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ManifestError(path, field, first["msg"]) from None
    return manifest.model_copy(update={"directory": path.parent})


def load_manifest(path: Path) -> ModelManifest:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ManifestError(path, "<yaml>", str(exc).splitlines()[0]) from None
    except OSError as exc:
        raise ManifestError(path, "<file>", exc.strerror or str(exc)) from None
    return parse_manifest(data, path)


def dump_manifest(manifest: ModelManifest) -> str:
    return yaml.safe_dump(manifest.model_dump(mode="json"), sort_keys=False)


def write_manifest(manifest: ModelManifest, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST_FILENAME
    path.write_text(dump_manifest(manifest), encoding="utf-8")
    return path


def parse_manifest_arg(data: dict[str, Any]) -> ModelManifest:
    """A manifest passed as a Serve application argument (with its `directory`)."""
    body = {k: v for k, v in data.items() if k != "directory"}
    manifest = ModelManifest.model_validate(body)
    directory = data.get("directory")
    return manifest.model_copy(update={"directory": Path(directory) if directory else None})
