"""`serve.app:build_app` — the import path of the Serve application (local run and cluster)."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from engines.manifest import ModelManifest, parse_manifest_arg
from engines.spec import engine_spec, load_object
from serve.builder import (
    GATEWAY_DEPLOYMENT,
    engine_deployment_name,
    engine_options,
    gateway_options,
)
from serve.settings import TheoSettings


def engine_deployment(engine: str) -> Any:
    """The Serve deployment of an engine: the one its spec names (by default the generic
    `serve.deployments.engine.EngineDeployment`), imported only when an app uses it."""
    return load_object(engine_spec(engine).deployment)


def build_app(args: dict[str, Any]) -> Application:
    """Build the Serve application from `serve.builder.app_args(...)` output."""
    from serve.gateway.app import Gateway

    settings_data: dict[str, Any] = args.get("settings", {})
    settings = TheoSettings(**settings_data)
    manifests: list[ModelManifest] = [parse_manifest_arg(m) for m in args.get("manifests", [])]
    engines = {
        m.name: engine_deployment(m.engine)
        .options(name=engine_deployment_name(m), **engine_options(settings, m))
        .bind(args["manifests"][i], settings_data)
        for i, m in enumerate(manifests)
    }
    gateway = Gateway.options(  # type: ignore[attr-defined]
        name=GATEWAY_DEPLOYMENT, **gateway_options(settings)
    )
    app: Application = gateway.bind(settings_data, args.get("manifests", []), engines)
    return app
