from __future__ import annotations

from pathlib import Path

from ray.serve.schema import ServeDeploySchema

from engines.bundled import install_bundled
from engines.registry import ModelRegistry
from serve.builder import engine_deployment_name, selected_manifests, serve_config
from serve.settings import TheoSettings


def config_for(models_dir: Path, **settings: object) -> dict[str, object]:
    install_bundled(models_dir)
    theo = TheoSettings(models_dir=models_dir, **settings)  # type: ignore[arg-type]
    manifests = selected_manifests(theo, ModelRegistry.scan(models_dir).models)
    return serve_config(theo, manifests)


def test_serve_config_validates_with_ray_schema(tmp_path: Path) -> None:
    config = config_for(tmp_path, api_keys=["secret"], whisper={"max_batch_size": 16})
    schema = ServeDeploySchema.model_validate(config)
    app = schema.applications[0]
    assert app.import_path == "serve.app:build_app" and app.route_prefix == "/"
    names = {d.name for d in app.deployments}
    assert names == {"Gateway", "whisper-whisper-base", "whisper-whisper-tiny_en"}
    whisper = next(d for d in app.deployments if d.name == "whisper-whisper-base")
    assert whisper.ray_actor_options.resources == {"whisper": 1.0}
    assert whisper.user_config == {"max_batch_size": 16, "batch_wait_timeout_s": 0.05}
    assert whisper.max_ongoing_requests == 128
    gateway = next(d for d in app.deployments if d.name == "Gateway")
    assert gateway.ray_actor_options.resources == {"gateway": 1.0}, "pinned to gateway nodes"
    assert "api_keys" not in app.args["settings"], "secrets must not land in serve config"


def test_autoscaling_replaces_fixed_replicas(tmp_path: Path) -> None:
    config = config_for(tmp_path, whisper={"autoscaling": {"min_replicas": 1, "max_replicas": 4}})
    app = ServeDeploySchema.model_validate(config).applications[0]
    whisper = next(d for d in app.deployments if d.name.startswith("whisper-"))
    assert whisper.autoscaling_config["max_replicas"] == 4  # type: ignore[index]
    assert "num_replicas" not in whisper.model_dump(exclude_unset=True)


def test_models_setting_selects_and_names(tmp_path: Path) -> None:
    config = config_for(tmp_path, models=["whisper-tiny.en"])
    app = config["applications"][0]  # type: ignore[index]
    assert [m["name"] for m in app["args"]["manifests"]] == ["whisper-tiny.en"]
    manifest = ModelRegistry.scan(tmp_path).models["whisper-tiny.en"]
    assert engine_deployment_name(manifest) == "whisper-whisper-tiny_en"


def test_in_place_settings_leave_the_code_version_alone(tmp_path: Path) -> None:
    """Serve restarts every replica of an application whose `args` change (its code version),
    but applies replica options and `user_config` in place: a cluster config keeps those out of
    `args`, so tuning `max_batch_size` or a replica count restarts nothing."""
    from ray.serve._private.deploy_utils import get_app_code_version

    def version(**settings: object) -> str:
        config = config_for(tmp_path, **settings)
        app = ServeDeploySchema.model_validate(config).applications[0]
        return get_app_code_version(app)

    base = version(whisper={"max_batch_size": 8})
    assert version(whisper={"max_batch_size": 4, "num_replicas": 3}) == base
    assert version(gateway={"num_replicas": 5, "max_ongoing_requests": 10}) == base
    assert version(whisper={"beam_size": 1}) != base, "constructor settings still restart"
