"""One source of Serve config: settings + manifests -> Serve application, or -> serve_config.yaml.

`theo serve` (embedded local Ray) and the Helm chart's RayService both come from here, so the
deployments a cluster runs are exactly the ones a laptop runs.
"""

from __future__ import annotations

import re
from typing import Any

from engines.manifest import ModelManifest
from engines.settings import DeploymentSettings, EngineSettings
from engines.spec import engine_spec, registered_engines, streams_natively
from serve.settings import TheoSettings

IMPORT_PATH = "serve.app:build_app"
GATEWAY_DEPLOYMENT = "Gateway"
GATEWAY_RESOURCE = "gateway"
"""The Ray custom resource every Gateway replica asks for (one unit each). Only the gateway's
nodes offer it (the chart's `gateway` worker group, the local node), so a Gateway replica never
lands on an engine node, whose spare CPUs would otherwise attract it."""

SECRET_SETTINGS = frozenset({"api_keys"})
STICKY_ROUTER_CLASS = "serve.sticky:SessionAffinityRouter"


def engine_resource(manifest: ModelManifest) -> str:
    """The Ray custom resource a model's replicas ask for (its engine's key); the worker group
    of the engine's image offers it."""
    return engine_spec(manifest.engine).key


def engine_settings(settings: TheoSettings, manifest: ModelManifest) -> EngineSettings:
    return settings.engine(manifest.engine)


def engine_deployment_name(manifest: ModelManifest) -> str:
    """Serve deployment name for a model: `<engine key>-<model name>`, Serve-safe characters."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", manifest.name)
    return f"{engine_resource(manifest)}-{safe}"


def _replica_options(spec: DeploymentSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_ongoing_requests": spec.max_ongoing_requests,
        "max_queued_requests": spec.max_queued_requests,
        "graceful_shutdown_timeout_s": spec.graceful_shutdown_timeout_s,
    }
    if spec.max_replicas_per_node is not None:
        options["max_replicas_per_node"] = spec.max_replicas_per_node
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
            "look_back_period_s": auto.look_back_period_s,
        }
    return options


def gateway_options(settings: TheoSettings) -> dict[str, Any]:
    options = _replica_options(settings.gateway)
    options["ray_actor_options"] = {
        "num_cpus": settings.gateway.num_cpus,
        "resources": {GATEWAY_RESOURCE: 1},
    }
    return options


def engine_user_config(settings: TheoSettings, manifest: ModelManifest) -> dict[str, Any]:
    """Live-tunable knobs (Serve `user_config`, applied by `reconfigure` without a restart):
    the settings fields the engine declares in `EngineSpec.user_config`."""
    values = engine_settings(settings, manifest)
    return {key: getattr(values, key) for key in engine_spec(manifest.engine).user_config}


def engine_options(settings: TheoSettings, manifest: ModelManifest) -> dict[str, Any]:
    values = engine_settings(settings, manifest)
    options = _replica_options(values)
    options["ray_actor_options"] = {
        "num_cpus": values.num_cpus,
        "num_gpus": values.num_gpus,
        "resources": {engine_resource(manifest): values.custom_resource},
    }
    user_config = engine_user_config(settings, manifest)
    if user_config:
        options["user_config"] = user_config
    if streams_natively(manifest):
        # The one place the router is chosen: native streams keep per-session decoder state
        # on a replica, so every call of a session goes to that replica.
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


def settings_applied_in_place() -> dict[str, list[str]]:
    """Settings fields, by section (`gateway`, each engine's key), that reach the replicas
    through the config's `deployments` entries rather than the application's `args`: replica
    counts, autoscaling, concurrency, Ray resources, shutdown, and each engine's `user_config`
    keys. Serve applies a change of those in place (lightweight updates, `reconfigure`), but
    restarts every replica of an application whose `args` change, so a cluster's config leaves
    them out of `args` (`build_app` computes options from defaults that the entries override)."""
    options = sorted(EngineSettings.model_fields.keys() & _OPTION_FIELDS)
    sections = {"gateway": sorted(_OPTION_FIELDS & DeploymentSettings.model_fields.keys())}
    for spec in registered_engines().values():
        sections[spec.key] = sorted({*options, *spec.user_config})
    return sections


_OPTION_FIELDS = frozenset(DeploymentSettings.model_fields) | {"custom_resource"}
"""What `_replica_options`, `gateway_options` and `engine_options` turn into deployment
options."""


def cluster_args(settings: TheoSettings, manifests: list[ModelManifest]) -> dict[str, Any]:
    """`app_args` for a `serve deploy` / RayService config: no secrets, and none of the settings
    that the `deployments` entries carry (`settings_applied_in_place`)."""
    args = app_args(settings, manifests)
    for section, fields in settings_applied_in_place().items():
        for name in fields:
            args["settings"][section].pop(name, None)
    return args


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
                "args": cluster_args(settings, manifests),
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
