"""What an engine declares about itself, once, and the registry that finds the declarations.

An engine is one folder (or one installed package) plus one registration: an `EngineSpec`
object published under the `theo.engines` entry-point group of its distribution, e.g. in
`pyproject.toml`

    [project.entry-points."theo.engines"]
    faster-whisper = "engines.whisper:SPEC"

Everything else loops over `registered_engines()`: the manifest's `engine` field, the settings
(`THEO_<KEY>__…`), the Serve builder and app, the local run's resources, the realtime path,
the Helm chart's generated defaults, and the tests. An engine package outside this repository
registers the same way.

The spec module must stay light: nothing here (nor in the module that defines a spec) may
import an engine library, since every process and image imports every registered spec.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from engines.settings import EngineSettings

if TYPE_CHECKING:
    from engines.base import STTBackend
    from engines.manifest import ModelManifest

ENTRY_POINT_GROUP = "theo.engines"
GENERIC_DEPLOYMENT = "serve.deployments.engine:EngineDeployment"
"""The Serve deployment that serves any engine through the `STTBackend` contract (and the
`NativeStreamingBackend` contract when it streams natively)."""
KEY_PATTERN = r"^[a-z][a-z0-9]{0,19}$"
"""An engine key names a settings field, an environment prefix, a Ray resource, a Kubernetes
worker group and pod label: lowercase letters and digits only."""


class Streaming(StrEnum):
    """How an engine's models can produce realtime partials."""

    REDECODE = "redecode"
    """No streaming state: the gateway re-decodes the open segment and confirms words with
    LocalAgreement (any engine can do this through `transcribe_file`)."""
    NATIVE = "native"
    """The backend keeps per-session decoder state (`NativeStreamingBackend`) and emits its
    own partials; the deployment routes every call of a session to one replica."""


@dataclass(frozen=True)
class EngineSpec:
    name: str
    """The manifest's `engine:` value, e.g. `faster-whisper`."""
    key: str
    """Short name: Ray custom resource, settings field (`THEO_<KEY>__…`), chart worker group
    (`engines.<key>`), deployment name prefix."""
    backend: str
    """`module:Class` of the engine's `STTBackend`, imported only in engine replicas."""
    settings: type[EngineSettings] = EngineSettings
    """The engine deployment's settings model."""
    deployment: str = GENERIC_DEPLOYMENT
    """`module:attr` of the Serve deployment serving the engine's models. Engines never import
    `serve`; only an engine that needs its own serving code (Whisper's cross-request batching)
    names one."""
    user_config: tuple[str, ...] = ()
    """Settings fields that are live-tunable through Serve `user_config` (`reconfigure`)."""
    extra: str | None = None
    """The `pyproject.toml` optional-dependencies extra holding the engine's libraries."""
    image: str | None = None
    """The Dockerfile of the engine's worker image, relative to the repository root; None when
    the engine needs no libraries of its own (it runs in any engine image)."""
    streaming: Streaming = Streaming.REDECODE
    """Whether the engine's backend streams natively (see `Streaming`)."""
    libraries: tuple[str, ...] = ()
    """Top-level modules of the engine's libraries: imported lazily, inside the backend, never
    at module level (an image without the extra must still import the spec and the backend
    module)."""
    description: str = ""
    bare_model: str | None = None
    """`module:function(name, directory, language) -> ModelManifest | None` recognising a
    model folder without a `theo.yaml` (`theo models add`), or None."""

    def __post_init__(self) -> None:
        if not re.fullmatch(KEY_PATTERN, self.key):
            raise ValueError(f"engine {self.name!r}: key {self.key!r} must match {KEY_PATTERN}")
        for name in self.user_config:
            if name not in self.settings.model_fields:
                raise ValueError(
                    f"engine {self.name!r}: user_config key {name!r} is not a field of "
                    f"{self.settings.__name__}"
                )

    @property
    def streams_natively(self) -> bool:
        return self.streaming is Streaming.NATIVE

    def backend_class(self) -> type[STTBackend]:
        backend: type[STTBackend] = load_object(self.backend)
        return backend


class UnknownEngineError(ValueError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        listed = ", ".join(known) or "none (is the package installed?)"
        super().__init__(f"unknown engine {name!r}; registered engines: {listed}")


def load_object(path: str) -> Any:
    """`package.module:attribute` -> the attribute."""
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise ValueError(f"{path!r} is not of the form 'module:attribute'")
    return getattr(importlib.import_module(module), attribute)


@cache
def registered_engines() -> dict[str, EngineSpec]:
    """Every engine registered in the installed distributions, by name (sorted)."""
    specs: dict[str, EngineSpec] = {}
    keys: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        spec = point.load()
        if not isinstance(spec, EngineSpec):
            raise TypeError(f"entry point {point.name} = {point.value} is not an EngineSpec")
        if spec.name != point.name:
            raise ValueError(f"entry point {point.name!r} registers engine {spec.name!r}")
        if spec.name in specs:
            if specs[spec.name] == spec:
                continue  # the same distribution found twice on the path
            raise ValueError(f"engine {spec.name!r} is registered twice")
        if spec.key in keys:
            raise ValueError(f"engines {keys[spec.key]!r} and {spec.name!r} share key {spec.key!r}")
        specs[spec.name] = spec
        keys[spec.key] = spec.name
    return dict(sorted(specs.items()))


def engine_spec(name: str) -> EngineSpec:
    specs = registered_engines()
    if name not in specs:
        raise UnknownEngineError(name, list(specs))
    return specs[name]


def streams_natively(manifest: ModelManifest) -> bool:
    """The one decision of a model's realtime path: native partials from the engine's own
    streaming state (sticky replicas) when the engine streams natively and the model declares
    `streaming`; otherwise the gateway re-decodes with LocalAgreement."""
    return engine_spec(manifest.engine).streams_natively and manifest.capabilities.streaming
