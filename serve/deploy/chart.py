"""The Helm chart's link to the Serve config builder.

The chart (`charts/theo`) turns its `settings` and `models` values into `serveConfigV2` with a
template that mirrors `serve.builder.serve_config`. Everything that template needs from Python
(settings defaults, manifest defaults, deployment names, engine resources, the secret settings
that never reach the config) is generated here into `charts/theo/files/builder-defaults.json`,
the settings/manifest parts of `values.schema.json` come from the pydantic models, and the
README's values table from the `# --` comments of values.yaml.
`chart_serve_config(values)` is what the builder emits for a set of chart values: tests render
the chart and require the two to be equal.

    python -m serve.deploy.chart          # regenerate the chart's generated files and k8s/
    python -m serve.deploy.chart --check  # exit 1 if any of them is stale
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from engines.manifest import Capabilities, ModelManifest, ModelSource
from engines.spec import EngineSpec, engine_spec, registered_engines
from serve.builder import (
    GATEWAY_DEPLOYMENT,
    GATEWAY_RESOURCE,
    SECRET_SETTINGS,
    STICKY_ROUTER_CLASS,
    app_args,
    serve_config,
    settings_applied_in_place,
)
from serve.deploy.helmtool import CHART_DIR, REPO_ROOT, coalesce, load_yaml, merge_values_files
from serve.deploy.k8s import generated_k8s_files
from serve.deploy.values_doc import with_values_table
from serve.settings import TheoSettings

DEFAULTS_FILE = CHART_DIR / "files" / "builder-defaults.json"
SCHEMA_FILE = CHART_DIR / "values.schema.json"
README_FILE = CHART_DIR / "README.md"
GENERATED_PREFIX = "generated."

CLUSTER_SETTINGS: dict[str, Any] = {"models_dir": "/models", "host": "0.0.0.0"}
"""Settings whose local defaults make no sense in a pod; values override them like any other."""

MOUNT_PATH = r"^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$"
"""`models_dir` in the chart: an absolute, normalised path (it is also the volume mount path),
so the string the chart passes on equals pydantic's `str(Path(...))`."""


class ValuesSettings(TheoSettings):
    """`TheoSettings` built only from the given data: no `THEO_*` environment, no dotenv."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def chart_values(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """The chart's `values.yaml` with `layers` (like `-f` files) merged the way Helm merges."""
    return coalesce(load_yaml(CHART_DIR / "values.yaml"), merge_values_files(layers))


def settings_from_values(values: Mapping[str, Any]) -> TheoSettings:
    overrides = values.get("settings") or {}
    return ValuesSettings(**coalesce(CLUSTER_SETTINGS, overrides))


IMAGE_REPOSITORY = "ghcr.io/theo-stt/theo-{key}"
"""Default image of an engine group whose engine has its own Dockerfile (`EngineSpec.image`);
engines without one run in the gateway image (`gatewayImage`)."""
ENGINE_GROUP_DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "gpus": 0,
    "replicasPerPod": 1,
    "replicas": 1,
    "minReplicas": 1,
    "maxReplicas": 4,
    "idleTimeoutSeconds": 600,
    "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
    "nodeSelector": {},
    "tolerations": [],
    "affinity": {},
    "rayStartParams": {},
    "env": [],
    "terminationGracePeriodSeconds": 330,
}
"""The worker group of a registered engine that `values.yaml` does not list (`engines.<key>`
values override it): off, one CPU replica per pod."""


def engine_group_defaults(spec: EngineSpec) -> dict[str, Any]:
    group = copy.deepcopy(ENGINE_GROUP_DEFAULTS)
    if spec.image is not None:
        group["image"] = {
            "repository": IMAGE_REPOSITORY.format(key=spec.key),
            "tag": "",
            "digest": "",
            "pullPolicy": "IfNotPresent",
        }
    return group


def engine_group(values: Mapping[str, Any], spec: EngineSpec) -> dict[str, Any]:
    """An engine's worker group values: its generated defaults, then `engines.<key>`; the
    gateway image when the engine has no image of its own and the values name none."""
    group = coalesce(engine_group_defaults(spec), (values.get("engines") or {}).get(spec.key) or {})
    group.setdefault("image", values.get("gatewayImage"))
    return group


def engine_enabled(values: Mapping[str, Any], engine: str) -> bool:
    return bool(engine_group(values, engine_spec(engine))["enabled"])


def manifests_from_values(values: Mapping[str, Any], settings: TheoSettings) -> list[ModelManifest]:
    """The enabled models whose engine has a worker group, in `values.models` order."""
    manifests = []
    for entry in values.get("models") or []:
        manifest = ModelManifest.model_validate(entry["manifest"])
        if entry.get("enabled", True) and engine_enabled(values, manifest.engine):
            update: dict[str, Any] = {"directory": settings.models_dir / manifest.name}
            if entry.get("source"):
                revision = entry.get("revision") or None
                update["source"] = ModelSource(uri=entry["source"], revision=revision)
            manifests.append(manifest.model_copy(update=update))
    return manifests


def chart_serve_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """What `serve.builder.serve_config` emits for these (fully merged) chart values."""
    settings = settings_from_values(values)
    return serve_config(settings, manifests_from_values(values, settings))


def _field_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """JSON defaults of a model's optional fields; nested required models give theirs."""
    defaults: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        if not field.is_required():
            defaults[name] = to_jsonable_python(field.get_default(call_default_factory=True))
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            defaults[name] = _field_defaults(field.annotation)
    return defaults


def _optional_model(annotation: Any) -> type[BaseModel] | None:
    """`X` when the annotation is `X | None` with `X` a pydantic model."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    models = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(models) == 1 and isinstance(models[0], type) and issubclass(models[0], BaseModel):
        return models[0]
    return None


def nullable_models(settings_model: type[BaseModel] = TheoSettings) -> list[dict[str, Any]]:
    """`None`-by-default sub-models (e.g. `whisper.autoscaling`) and the defaults they get
    when a user sets them to a (possibly partial) mapping."""
    found = []
    for parent, field in settings_model.model_fields.items():
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            continue
        for child, sub in annotation.model_fields.items():
            model = _optional_model(sub.annotation)
            if model is not None:
                found.append({"path": [parent, child], "defaults": _field_defaults(model)})
    for field in settings_model.model_fields.values():
        if _optional_model(field.annotation) is not None:
            raise NotImplementedError("top-level optional sub-models: extend the chart template")
    return found


def builder_defaults() -> dict[str, Any]:
    """Everything the chart's serveConfigV2 template takes from the builder and the models."""
    settings = ValuesSettings(**CLUSTER_SETTINGS)
    skeleton = serve_config(settings, [])
    application = skeleton["applications"][0]
    application.pop("args")
    defaults_settings = app_args(settings, [])["settings"]
    application.pop("deployments")
    return {
        "_comment": "Generated by `python -m serve.deploy.chart` from serve/builder.py.",
        "skeleton": skeleton,
        "settings": defaults_settings,
        "secretSettings": sorted(SECRET_SETTINGS),
        "settingsAppliedInPlace": settings_applied_in_place(),
        "nullableModels": nullable_models(),
        "manifest": _field_defaults(ModelManifest),
        "manifestSource": _field_defaults(ModelSource),
        "gatewayDeployment": GATEWAY_DEPLOYMENT,
        "gatewayResource": GATEWAY_RESOURCE,
        "stickyRouterClass": STICKY_ROUTER_CLASS,
        "engines": {name: _engine_defaults(spec) for name, spec in registered_engines().items()},
    }


def _engine_defaults(spec: EngineSpec) -> dict[str, Any]:
    """What the templates need of a registered engine (`engines.spec.EngineSpec`)."""
    return {
        "key": spec.key,
        "userConfigKeys": list(spec.user_config),
        "nativeStreaming": spec.streams_natively,
        "group": engine_group_defaults(spec),
    }


def _close_objects(node: Any) -> None:
    """Reject unknown keys wherever a schema lists properties and says nothing else."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        node.pop("title", None)
        for value in node.values():
            _close_objects(value)
    elif isinstance(node, list):
        for value in node:
            _close_objects(value)


def _generated_defs(model: type[BaseModel], drop: Sequence[str]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/$defs/" + GENERATED_PREFIX + "{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    for name in drop:
        schema["properties"].pop(name, None)
    defs[model.__name__] = schema
    _close_objects(defs)
    return {GENERATED_PREFIX + name: value for name, value in sorted(defs.items())}


def values_schema(current: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with its generated `$defs` replaced by fresh ones from the pydantic models."""
    defs = {k: v for k, v in current.get("$defs", {}).items() if not k.startswith(GENERATED_PREFIX)}
    settings = _generated_defs(TheoSettings, sorted(SECRET_SETTINGS))
    settings[GENERATED_PREFIX + "TheoSettings"]["properties"]["models_dir"]["pattern"] = MOUNT_PATH
    defs.update(settings)
    # `source` comes from a model's `source` and `revision` values, not from its manifest
    manifest = _generated_defs(ModelManifest, ["directory", "source"])
    engines = list(registered_engines())
    manifest[GENERATED_PREFIX + "ModelManifest"]["properties"]["engine"]["enum"] = engines
    defs.update(manifest)
    defs.update(_generated_defs(Capabilities, []))
    properties = dict(current["properties"])
    properties["engines"] = {
        "type": "object",
        "description": "One worker group per registered engine, by engine key.",
        "additionalProperties": False,
        "properties": {
            spec.key: {"$ref": "#/$defs/engineGroup"} for spec in registered_engines().values()
        },
    }
    return {**current, "properties": properties, "$defs": dict(sorted(defs.items()))}


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def generated_chart_files() -> dict[Path, str]:
    current = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    readme = README_FILE.read_text(encoding="utf-8")
    return {
        DEFAULTS_FILE: dump_json(builder_defaults()),
        SCHEMA_FILE: dump_json(values_schema(current)),
        README_FILE: with_values_table(readme, CHART_DIR / "values.yaml"),
    }


def stale_files(files: Mapping[Path, str]) -> list[Path]:
    return [p for p, text in files.items() if not p.exists() or p.read_text("utf-8") != text]


def write_files(files: Mapping[Path, str]) -> None:
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    stale: list[Path] = []
    # The k8s manifests are the chart rendered with its generated files: those come first.
    for generate in (generated_chart_files, generated_k8s_files):
        files = generate()
        stale += stale_files(files)
        if not args.check:
            write_files(files)
    for path in stale:
        if args.check:
            print(f"stale: {path.relative_to(REPO_ROOT)}", file=sys.stderr)
        else:
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
