"""One source of Serve config: settings + manifests -> Serve application, or -> serve_config.yaml.

`theo serve` (embedded local Ray) and the Helm chart's RayService both come from here, so the
deployments a cluster runs are exactly the ones a laptop runs.
"""

from __future__ import annotations

import re
from typing import Any

from engines.manifest import Architecture, EngineName, ModelManifest
from serve.settings import DeploymentSettings, EngineSettings, TheoSettings

IMPORT_PATH = "serve.app:build_app"
GATEWAY_DEPLOYMENT = "Gateway"

ENGINE_RESOURCE: dict[EngineName, str] = {
    EngineName.FASTER_WHISPER: "whisper",
    EngineName.WENET: "wenet",
}
"""The Ray custom resource each engine's replicas ask for; worker groups per image offer it."""

SECRET_SETTINGS = frozenset({"api_keys"})
STICKY_ROUTER_CLASS = "serve.sticky:SessionAffinityRouter"


def engine_settings(settings: TheoSettings, engine: EngineName) -> EngineSettings:
    if engine is EngineName.FASTER_WHISPER:
        return settings.whisper
    return settings.wenet


def engine_deployment_name(manifest: ModelManifest) -> str:
    """Serve deployment name for a model: `<resource>-<model name>`, Serve-safe characters."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", manifest.name)
    return f"{ENGINE_RESOURCE[manifest.engine]}-{safe}"


def _replica_options(spec: DeploymentSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_ongoing_requests": spec.max_ongoing_requests,
        "max_queued_requests": spec.max_queued_requests,
        "graceful_shutdown_timeout_s": spec.graceful_shutdown_timeout_s,
    }
    if spec.autoscaling is None:
        options["num_replicas"] = spec.num_replicas
    else:
        auto = spec.autoscaling
        options["autoscaling_config"] = {
            "min_replicas": auto.min_replicas,
            "initial_replicas": max(auto.min_replicas, 1),
            "max_replicas": auto.max_replicas,
            "target_ongoing_requests": auto.target_ongoing_requests,
            "upscale_delay_s": auto.upscale_delay_s,
            "downscale_delay_s": auto.downscale_delay_s,
            "metrics_interval_s": auto.metrics_interval_s,
            "look_back_period_s": auto.look_back_period_s,
        }
    return options


def gateway_options(settings: TheoSettings) -> dict[str, Any]:
    options = _replica_options(settings.gateway)
    options["ray_actor_options"] = {"num_cpus": settings.gateway.num_cpus}
    return options


def engine_user_config(settings: TheoSettings, manifest: ModelManifest) -> dict[str, Any]:
    """Live-tunable knobs (Serve `user_config`, applied by `reconfigure` without a restart)."""
    if manifest.engine is EngineName.FASTER_WHISPER:
        return {
            "max_batch_size": settings.whisper.max_batch_size,
            "batch_wait_timeout_s": settings.whisper.batch_wait_timeout_s,
        }
    return {}


def engine_options(settings: TheoSettings, manifest: ModelManifest) -> dict[str, Any]:
    spec = engine_settings(settings, manifest.engine)
    options = _replica_options(spec)
    options["ray_actor_options"] = {
        "num_cpus": spec.num_cpus,
        "num_gpus": spec.num_gpus,
        "resources": {ENGINE_RESOURCE[manifest.engine]: spec.custom_resource},
    }
    user_config = engine_user_config(settings, manifest)
    if user_config:
        options["user_config"] = user_config
    if manifest.capabilities.architecture is Architecture.CTC:
        # Streaming replicas keep per-session decoder state: route each session to one.
        options["request_router_config"] = {"request_router_class": STICKY_ROUTER_CLASS}
    return options


def manifest_arg(manifest: ModelManifest) -> dict[str, Any]:
    data = manifest.model_dump(mode="json")
    data["directory"] = str(manifest.directory) if manifest.directory else None
    return data


def app_args(
    settings: TheoSettings, manifests: list[ModelManifest], *, include_secrets: bool = False
) -> dict[str, Any]:
    """The `args` of the Serve application: everything `build_app` needs, JSON-serialisable."""
    exclude = set() if include_secrets else set(SECRET_SETTINGS)
    return {
        "settings": settings.model_dump(mode="json", exclude=exclude),
        "manifests": [manifest_arg(m) for m in manifests],
    }


def deployment_overrides(
    settings: TheoSettings, manifests: list[ModelManifest]
) -> list[dict[str, Any]]:
    deployments = [{"name": GATEWAY_DEPLOYMENT, **gateway_options(settings)}]
    deployments += [
        {"name": engine_deployment_name(m), **engine_options(settings, m)} for m in manifests
    ]
    return deployments


def serve_config(
    settings: TheoSettings, manifests: list[ModelManifest], *, http_host: str = "0.0.0.0"
) -> dict[str, Any]:
    """A `serve deploy` / RayService `serveConfigV2` document for these settings and models."""
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": http_host, "port": settings.port},
        "applications": [
            {
                "name": settings.app_name,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": app_args(settings, manifests),
                "deployments": deployment_overrides(settings, manifests),
            }
        ],
    }


def selected_manifests(
    settings: TheoSettings, available: dict[str, ModelManifest]
) -> list[ModelManifest]:
    """The models to serve: `settings.models` in order, or every available one."""
    if not settings.models:
        return [available[name] for name in sorted(available)]
    missing = [name for name in settings.models if name not in available]
    if missing:
        raise ValueError(f"models not found in {settings.models_dir}: {', '.join(missing)}")
    return [available[name] for name in settings.models]
