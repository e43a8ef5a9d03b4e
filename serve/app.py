"""`serve.app:build_app` — the import path of the Serve application (local run and cluster)."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from engines.manifest import EngineName, ModelManifest, parse_manifest_arg
from serve.builder import (
    GATEWAY_DEPLOYMENT,
    engine_deployment_name,
    engine_options,
    gateway_options,
)
from serve.settings import TheoSettings


def _engine_deployment(engine: EngineName) -> Any:
    """The deployment class of an engine. The one place an engine name picks Serve code."""
    if engine is EngineName.FASTER_WHISPER:
        from serve.deployments.whisper import WhisperDeployment

        return WhisperDeployment
    from serve.deployments.wenet import WenetDeployment

    return WenetDeployment


def build_app(args: dict[str, Any]) -> Application:
    """Build the Serve application from `serve.builder.app_args(...)` output."""
    from serve.gateway.app import Gateway

    settings_data: dict[str, Any] = args.get("settings", {})
    settings = TheoSettings(**settings_data)
    manifests: list[ModelManifest] = [parse_manifest_arg(m) for m in args.get("manifests", [])]
    engines = {
        m.name: _engine_deployment(m.engine)
        .options(name=engine_deployment_name(m), **engine_options(settings, m))
        .bind(args["manifests"][i], settings_data)
        for i, m in enumerate(manifests)
    }
    gateway = Gateway.options(  # type: ignore[attr-defined]
        name=GATEWAY_DEPLOYMENT, **gateway_options(settings)
    )
    app: Application = gateway.bind(settings_data, args.get("manifests", []), engines)
    return app
