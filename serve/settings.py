"""Service settings: environment variables prefixed `THEO_`, nested with `__`.

Example: `THEO_WHISPER__MAX_BATCH_SIZE=16`, `THEO_API_KEYS=key1,key2`.

Each registered engine adds one field, named by its key and typed by its settings model
(`EngineSpec.key`, `EngineSpec.settings`): `THEO_<KEY>__<FIELD>` sets it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, create_model, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engines.settings import DeploymentSettings, EngineSettings
from engines.spec import EngineSpec, engine_spec, registered_engines
from serve.realtime.settings import RealtimeSettings


class GatewaySettings(DeploymentSettings):
    max_ongoing_requests: int = Field(default=1024, ge=1)
    num_cpus: float = Field(default=0.5, ge=0)
    graceful_shutdown_timeout_s: float = Field(default=300.0, ge=0)


def default_models_dir() -> Path:
    return Path.home() / ".theo" / "models"


class BaseTheoSettings(BaseSettings):
    """The settings every deployment shares; `TheoSettings` adds one field per engine."""

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
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)

    @field_validator("models", "api_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def engine(self, engine: str | EngineSpec) -> EngineSettings:
        """The deployment settings of an engine (by name or spec)."""
        spec = engine if isinstance(engine, EngineSpec) else engine_spec(engine)
        value = getattr(self, spec.key)
        assert isinstance(value, EngineSettings)
        return value


def _with_engine_fields(base: type[BaseTheoSettings]) -> type[BaseTheoSettings]:
    fields: dict[str, Any] = {}
    for spec in registered_engines().values():
        if spec.key in base.model_fields:
            raise ValueError(f"engine {spec.name!r}: key {spec.key!r} is a Theo setting")
        fields[spec.key] = (spec.settings, Field(default_factory=spec.settings))
    model: type[BaseTheoSettings] = create_model(
        "TheoSettings", __base__=base, __module__=__name__, **fields
    )
    model.__doc__ = "Theo's settings, with one field per registered engine."
    return model


if TYPE_CHECKING:
    TheoSettings = BaseTheoSettings
else:
    TheoSettings = _with_engine_fields(BaseTheoSettings)
