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
    "ha": ["ha-values.yaml"],
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

LOCKED_DOWN = {"RayService", "ServiceAccount", "ConfigMap", "Pod", "NetworkPolicy"}
EXPECTED_KINDS = {
    "defaults": LOCKED_DOWN | {"PodDisruptionBudget"},
    "default-gpu": LOCKED_DOWN | {
        "PersistentVolumeClaim", "Ingress", "PodMonitor", "PrometheusRule",
        "PodDisruptionBudget", "Job",
    },
    "cpu-only": LOCKED_DOWN | {"PodDisruptionBudget"},
    "whisper-only": LOCKED_DOWN | {"PodDisruptionBudget"},
    "ha": LOCKED_DOWN | {
        "PersistentVolumeClaim", "PodMonitor", "PrometheusRule", "PodDisruptionBudget", "Job"
    },
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


WRITABLE = {"/tmp", "/home/theo"}
"""Where Ray and the app write besides /dev/shm and the model volume (Ray's session directory
is /tmp/ray; library caches live under $HOME)."""


def test_pods_run_as_non_root_on_a_read_only_root(render: Render) -> None:
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
        assert context["readOnlyRootFilesystem"] is True
    # Every container that runs Ray or `theo pull` has its writable paths on emptyDirs.
    head = groups(objects)["head"]["template"]["spec"]
    writers = [(pod, c) for pod in pods for c in ks.all_containers(pod) if c["name"] != "api"]
    writers.append((head, autoscaler))
    for pod, container in writers:
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounted = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        assert set(mounted) >= WRITABLE, container.get("name", "autoscaler")
        for path in WRITABLE:
            assert "sizeLimit" in mounted[path]["emptyDir"], path
        assert not any(m.get("readOnly") for m in container["volumeMounts"]
                       if m["mountPath"] in WRITABLE)  # fmt: skip
    for group in groups(objects).values():
        mounts = {m["mountPath"] for m in ray_container(group)["volumeMounts"]}
        assert "/dev/shm" in mounts


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


def test_every_ray_pod_bounds_request_bodies_in_serves_proxy(render: Render) -> None:
    """Serve's proxy runs on every node: each Ray container loads Theo's body bound with the
    upload limit the gateway has (`serve.proxy`)."""
    objects = render(*layers("defaults"), {"settings": {"max_upload_mb": 100}})
    for group_name, group in groups(objects).items():
        env = {e["name"]: e.get("value") for e in ray_container(group)["env"]}
        assert env["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] == "serve.proxy:middlewares"
        assert float(env["THEO_MAX_UPLOAD_MB"]) == 100, group_name
    settings = ks.serve_config(rayservice(objects))["applications"][0]["args"]["settings"]
    assert settings["max_upload_mb"] == 100


@pytest.mark.parametrize(
    ("name", "claim", "pulls"),
    [("default-gpu", "theo-models", True), ("whisper-only", "whisper-models", False),
     ("defaults", None, True)],
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
            else {"name": "models", "emptyDir": {"sizeLimit": "50Gi"}}
        )
        # writable: a replica pulls a model added after its pod started (engines.pull.ensure_model)
        mounts = {m["name"]: m for m in ray_container(group)["volumeMounts"]}
        assert mounts["models"] == {"name": "models", "mountPath": "/models"}
        hf_token = gen.chart_values(*layers(name))["modelPull"]["hfTokenSecret"]["name"]
        env = {e["name"]: e for e in ray_container(group)["env"]}
        assert ("HF_TOKEN" in env) is bool(hf_token)  # the replica may pull too
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
        assert volumes[-1] == {"name": "models", "persistentVolumeClaim": {"claimName": claim}}
        assert [v["name"] for v in volumes] == ["tmp", "home", "models"]


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


def test_pull_script_pulls_the_pinned_revision(render: Render, tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    model = {"source": "Systran/faster-whisper-small", "revision": commit, "manifest": {
        "name": "whisper-small", "engine": "faster-whisper",
        "capabilities": {"architecture": "encoder-decoder"},
        "engine_config": {"model_path": "/models/whisper-small/model"}}}  # fmt: skip
    objects = render({"models": [model], "engines": {"wenet": {"enabled": False}}})
    data = ks.only(objects, "ConfigMap")["data"]
    assert data["pull-whisper.txt"].split() == ["whisper-small", model["source"], commit]
    done = run_pull(pull_script(objects, "whisper"), tmp_path, data, "whisper")
    assert done.returncode == 0, done.stderr
    models = tmp_path / "models"
    assert (tmp_path / "calls").read_text(encoding="utf-8").split() == [
        "pull", model["source"], "--name", "whisper-small", "--models-dir", str(models),
        "--revision", commit,
    ]  # fmt: skip
    (manifest,) = ks.serve_config(rayservice(objects))["applications"][0]["args"]["manifests"]
    assert manifest["source"] == {
        "uri": model["source"], "revision": commit, "commit": None, "sha256": {}
    }  # fmt: skip


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


def test_default_model_storage_binds_anywhere(render: Render) -> None:
    """No PVC by default (an RWX claim without a class stays Pending on most clusters): each
    engine pod pulls into its own emptyDir, so there is no shared volume for an upgrade Job."""
    objects = render()
    assert not ks.by_kind(objects, "PersistentVolumeClaim") and not ks.by_kind(objects, "Job")
    shared = render({"modelStorage": {"create": True}})
    (claim,) = ks.by_kind(shared, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_upgrade_job_pulls_every_served_model(render: Render, tmp_path: Path) -> None:
    (job,) = ks.by_kind(render({"modelStorage": {"create": True}}), "Job")
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
        {"settings": {"whisper": {"max_batch_size": 24, "autoscaling": {"max_replicas": 2}}}},
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


def serve_endpoints(objects: list[dict[str, Any]]) -> dict[str, int]:
    """The pods (by group) whose port the serve Service reaches, and that port, resolved as
    the EndpointSlice controller does: a named target port counts only on pods that declare a
    port of that name (k8s.io/endpointslice FindPort); others get no port for the Service."""
    service = rayservice(objects)["spec"]["serveService"]
    (port,) = service["spec"]["ports"]
    reached = {}
    for name, group in groups(objects).items():
        declared = {p.get("name"): p["containerPort"] for p in ray_container(group)["ports"]}
        target = port["targetPort"]
        if isinstance(target, int):
            reached[name] = target
        elif target in declared:
            reached[name] = declared[target]
    return reached


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_clients_reach_only_gateway_pods(render: Render, name: str) -> None:
    """KubeRay's serve Service selects every Ray pod of the active cluster with a healthy Serve
    proxy, engine pods included (issue 10). Its target port is the *name* `serve`, which only
    the gateway group (and the head, which KubeRay keeps out: excludeHeadPodFromServeSvc)
    declares, so client connections end on gateway pods only."""
    objects = render(*layers(name))
    spec = rayservice(objects)["spec"]
    assert spec["excludeHeadPodFromServeSvc"] is True
    port = ks.serve_config(rayservice(objects))["http_options"]["port"]
    assert {k: v for k, v in serve_endpoints(objects).items() if k != "head"} == {"gateway": port}
    engines = [g for n, g in groups(objects).items() if n not in ("head", "gateway")]
    for group in engines:
        ports = {p["name"]: p["containerPort"] for p in ray_container(group)["ports"]}
        assert ports == {"proxy": port, "metrics": 8080}
        # KubeRay's injected probe looks for a port named `serve`: the chart's checks the proxy
        # on the configured port itself.
        probe = " ".join(ray_container(group)["readinessProbe"]["exec"]["command"])
        assert f"http://localhost:{port}/-/healthz" in probe and "local_raylet_healthz" in probe
    for ingress in ks.by_kind(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend == {"name": "theo-serve", "port": {"name": "serve"}}
    for pod in ks.by_kind(objects, "Pod"):
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert (
            env["THEO_URL"]
            == f"http://theo-serve:{spec['serveService']['spec']['ports'][0]['port']}"
        )


def test_a_changed_port_keeps_gateway_only_routing(render: Render) -> None:
    objects = render({"settings": {"port": 9000}})
    ks.validate_objects(objects)
    assert {k: v for k, v in serve_endpoints(objects).items() if k != "head"} == {"gateway": 9000}
    probe = " ".join(ray_container(groups(objects)["whisper"])["readinessProbe"]["exec"]["command"])
    assert "localhost:9000/-/healthz" in probe


def test_ingress_suits_websockets_and_keeps_ops_private(render: Render) -> None:
    objects = render(*layers("default-gpu"))
    ingress = ks.only(objects, "Ingress")
    notes = ingress["metadata"]["annotations"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(notes["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    for values in ({}, {"ingress": {"enabled": True}}):
        for ingress in ks.by_kind(render(*layers("default-gpu"), values), "Ingress"):
            paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
            assert paths and all(p["path"].startswith("/v1") for p in paths), paths
    # what the default paths publish, as the ingress controller matches them
    published = [
        ("/v1/audio/transcriptions", True),
        ("/v1/realtime", True),
        ("/v1/models", True),
        ("/metrics", False),
        ("/health", False),
        ("/", False),
    ]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    for url, public in published:
        matched = any(url == p["path"] or url.startswith(p["path"].rstrip("/") + "/")
                      for p in paths if p["pathType"] == "Prefix")  # fmt: skip
        assert matched is public, url


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
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "test"


# ---- security -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_ray_token_auth_is_on(render: Render, name: str) -> None:
    cluster = rayservice(render(*layers(name)))["spec"]["rayClusterConfig"]
    expected = {"mode": "token"}
    secret = gen.chart_values(*layers(name))["rayAuth"]["secretName"]
    if secret:
        expected["secretName"] = secret
    assert cluster["authOptions"] == expected
    off = rayservice(render(*layers(name), {"rayAuth": {"enabled": False}}))
    assert "authOptions" not in off["spec"]["rayClusterConfig"]


Peer = dict[str, dict[str, str]]
"""A client pod: {"pod": its labels, "namespace": its namespace's labels}."""


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        value, present = labels.get(expression["key"]), expression["key"] in labels
        match expression["operator"]:
            case "In":
                ok = present and value in expression["values"]
            case "NotIn":
                ok = not present or value not in expression["values"]
            case "Exists":
                ok = present
            case "DoesNotExist":
                ok = not present
            case other:
                raise AssertionError(other)
        if not ok:
            return False
    return True


def _peer_matches(rule_peer: dict[str, Any], peer: Peer, own_namespace: str) -> bool:
    pods, namespaces = rule_peer.get("podSelector"), rule_peer.get("namespaceSelector")
    if namespaces is None and peer["namespace"]["kubernetes.io/metadata.name"] != own_namespace:
        return False  # a bare podSelector means pods of the policy's namespace
    if namespaces is not None and not _selects(namespaces, peer["namespace"]):
        return False
    return pods is None or _selects(pods, peer["pod"])


def allowed(objects: list[dict[str, Any]], target: dict[str, str], port: int, peer: Peer) -> bool:
    """NetworkPolicy semantics (ingress): a pod no policy selects accepts everything; otherwise
    the union of the rules of the policies that select it."""
    policies = [p for p in ks.by_kind(objects, "NetworkPolicy")
                if _selects(p["spec"]["podSelector"], target)]  # fmt: skip
    if not policies:
        return True
    for policy in policies:
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports is not None and not any(p["port"] == port for p in ports):
                continue
            sources = rule.get("from")
            if sources is None or any(_peer_matches(s, peer, NAMESPACE) for s in sources):
                return True
    return False


def peer(namespace: str, **labels: str) -> Peer:
    return {"pod": labels, "namespace": {"kubernetes.io/metadata.name": namespace}}


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_network_policies_lock_ray_down(render: Render, name: str) -> None:
    objects = render(*layers(name))
    values = gen.chart_values(*layers(name))
    port = ks.serve_config(rayservice(objects))["http_options"]["port"]
    pods = {n: g["template"]["metadata"]["labels"] for n, g in groups(objects).items()}
    own = {"app.kubernetes.io/name": "theo", "app.kubernetes.io/instance": "theo"}
    ray_peer = peer(NAMESPACE, **pods["gateway"])
    operator = peer(values["networkPolicy"]["operatorNamespace"], app="kuberay-operator")
    stranger = peer(NAMESPACE, app="some-other-app")
    stranger_elsewhere = peer("team-b", app="notebook")
    test_pod = peer(NAMESPACE, **own, **{"app.kubernetes.io/component": "test"})
    pull_job = peer(NAMESPACE, **own, **{"app.kubernetes.io/component": "models"})
    ray_ports = (6379, 8265, 10001, 52365, 20000, port)  # GCS, dashboard, client, agent, worker
    incremental = values["rayService"]["upgradeStrategy"] == "NewClusterWithIncrementalUpgrade"
    for group, labels in pods.items():
        for ray_port in ray_ports:
            assert allowed(objects, labels, ray_port, ray_peer), (group, ray_port)
            # KubeRay's incremental upgrade routes through per-cluster Services that reach
            # every worker's proxy; otherwise only gateway pods serve clients.
            serving = group == "gateway" or (incremental and group != "head")
            for outsider in (stranger, stranger_elsewhere, test_pod, pull_job):
                reachable = ray_port == port and serving
                if reachable and values["networkPolicy"]["serveFrom"]:
                    reachable = outsider is test_pod
                assert allowed(objects, labels, ray_port, outsider) is reachable, (group, ray_port)
        assert allowed(objects, labels, 8265, operator) is (group == "head"), group
        assert not allowed(objects, labels, 6379, operator), group
    # the dashboard: the operator (and `dashboardFrom`), nobody else
    for extra in values["networkPolicy"]["dashboardFrom"]:
        admin = peer(extra["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        assert allowed(objects, pods["head"], 8265, admin)
        assert not allowed(objects, pods["head"], 6379, admin)
    prometheus = peer("monitoring", app="prometheus")
    for labels in pods.values():
        assert allowed(objects, labels, 8080, prometheus)
        assert not allowed(objects, labels, 8080, stranger_elsewhere)
    if values["networkPolicy"]["serveFrom"]:
        ingress_ns = values["networkPolicy"]["serveFrom"][0]["namespaceSelector"]["matchLabels"]
        controller = peer(ingress_ns["kubernetes.io/metadata.name"], app="controller")
        assert allowed(objects, pods["gateway"], port, controller)
        assert allowed(objects, pods["whisper"], port, controller) is incremental
        assert not allowed(objects, pods["head"], port, controller)
    opened = render(*layers(name), {"networkPolicy": {"enabled": False}})
    assert not ks.by_kind(opened, "NetworkPolicy")
    assert allowed(opened, pods["head"], 8265, stranger_elsewhere)  # what the default prevents


def test_network_policies_cover_a_disabled_engine_group(render: Render) -> None:
    """Disabling an engine starts a new cluster; the old one's pods of that group keep their
    Ray traffic until the old cluster is deleted."""
    objects = render({"engines": {"wenet": {"enabled": False}}})
    wenet = {"app.kubernetes.io/name": "theo", "app.kubernetes.io/instance": "theo",
             "app.kubernetes.io/component": "wenet"}  # fmt: skip
    head = peer(NAMESPACE, **{**wenet, "app.kubernetes.io/component": "head"})
    assert allowed(objects, wenet, 10002, head)
    assert not allowed(objects, wenet, 10002, peer(NAMESPACE, app="x"))


# ---- availability ---------------------------------------------------------------------------


def _disruptions_allowed(budget: dict[str, Any], pods: int) -> int:
    spec = budget["spec"]
    if "maxUnavailable" in spec:
        value = spec["maxUnavailable"]
        if isinstance(value, str):
            return -(-pods * int(value.rstrip("%")) // 100)  # percentages round up
        return int(value)
    return pods - int(spec["minAvailable"])


PDB_VARIANTS: dict[str, list[dict[str, Any]]] = {
    **{name: layers(name) for name in VALUE_SETS},
    "percent": [{"podDisruptionBudget": {"maxUnavailable": "10%"}}],
    "minAvailable 1": [{"podDisruptionBudget": {"minAvailable": 1}}],
    "minAvailable 1, groups of 3": [{
        "podDisruptionBudget": {"minAvailable": 1},
        "gateway": {"replicas": 3, "minReplicas": 3},
        "engines": {"whisper": {"replicas": 2, "minReplicas": 2}},
    }],
    "single-pod groups": [{
        "gateway": {"maxReplicas": 1},
        "engines": {"whisper": {"maxReplicas": 1, "replicasPerPod": 2},
                    "wenet": {"maxReplicas": 1, "replicasPerPod": 2}},
        "settings": {"whisper": {"autoscaling": {"max_replicas": 1}},
                     "wenet": {"autoscaling": {"max_replicas": 2}},
                     "gateway": {"autoscaling": {"max_replicas": 4}}},
    }],
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(PDB_VARIANTS))
def test_no_disruption_budget_blocks_a_node_drain(render: Render, variant: str) -> None:
    """Each budget selects one worker group, and at every pod count the group can have (from
    minReplicas, at least 1, to maxReplicas) it allows at least one eviction; the head and
    single-pod groups get none."""
    objects = render(*PDB_VARIANTS[variant])
    budgets = ks.by_kind(objects, "PodDisruptionBudget")
    found = groups(objects)
    for budget in budgets:
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        selected = [n for n, g in found.items()
                    if budget["spec"]["selector"]["matchLabels"].items()
                    <= g["template"]["metadata"]["labels"].items()]  # fmt: skip
        assert len(selected) == 1 and selected[0] != "head", selected
        group = found[selected[0]]
        assert group["maxReplicas"] > 1
        for pods in range(max(group["minReplicas"], 1), group["maxReplicas"] + 1):
            assert _disruptions_allowed(budget, pods) >= 1, (selected, pods)
    covered = {b["metadata"]["labels"]["app.kubernetes.io/component"] for b in budgets}
    if variant == "defaults":
        assert covered == {"gateway", "whisper", "wenet"}
    if variant == "single-pod groups":
        assert covered == set()
    if variant == "minAvailable 1, groups of 3":
        assert covered == {"gateway", "whisper"}


def test_incremental_upgrade_is_selectable(render: Render) -> None:
    objects = render(*layers("ha"))
    spec = rayservice(objects)["spec"]
    assert spec["upgradeStrategy"] == {
        "type": "NewClusterWithIncrementalUpgrade",
        "clusterUpgradeOptions": {"gatewayClassName": "istio", "stepSizePercent": 25,
                                  "intervalSeconds": 60, "maxSurgePercent": 50},
    }  # fmt: skip
    assert spec["rayClusterConfig"]["enableInTreeAutoscaling"] is True
    assert not ks.by_kind(objects, "Ingress")
    for strategy in ("NewCluster", "None"):
        plain = rayservice(render({"rayService": {"upgradeStrategy": strategy}}))["spec"]
        assert plain["upgradeStrategy"] == {"type": strategy}


def test_gcs_fault_tolerance_uses_the_external_redis(render: Render) -> None:
    cluster = rayservice(render(*layers("ha")))["spec"]["rayClusterConfig"]
    assert cluster["gcsFaultToleranceOptions"] == {
        "redisAddress": "redis-master.redis:6379",
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "theo-redis", "key": "password"}}},
    }
    assert "gcsFaultToleranceOptions" not in rayservice(render())["spec"]["rayClusterConfig"]


def drain_deadline(group: dict[str, Any]) -> int | None:
    hook = ray_container(group).get("lifecycle", {}).get("preStop")
    if hook is None:
        return None
    command = hook["exec"]["command"]
    assert command[:4] == ["python", "-m", "serve.drain", "--deadline-s"], command
    return int(command[4])


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_worker_pods_drain_before_they_stop(render: Render, name: str) -> None:
    """grace period >= drain deadline (+ margin) >= every hosted replica's graceful shutdown;
    the old cluster outlives the Ingress's stream timeouts and the gateway's shutdown."""
    objects = render(*layers(name))
    values = gen.chart_values(*layers(name))
    margin = values["drain"]["stopMarginSeconds"]
    found = deployments(objects)
    for group_name, group in groups(objects).items():
        deadline = drain_deadline(group)
        if group_name == "head":
            assert deadline is None  # it hosts no replica
            continue
        assert deadline is not None, group_name
        grace = group["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= deadline + margin
        hosted = [d for n, d in found.items() if owner(n) == group_name]
        assert hosted or group_name != "gateway"
        assert all(deadline >= d["graceful_shutdown_timeout_s"] for d in hosted), group_name
    spec = rayservice(objects)["spec"]
    delay = spec["rayClusterDeletionDelaySeconds"]
    assert delay >= found["Gateway"]["graceful_shutdown_timeout_s"]
    for ingress in ks.by_kind(objects, "Ingress"):
        for key, value in ingress["metadata"]["annotations"].items():
            if key.endswith(("proxy-read-timeout", "proxy-send-timeout")):
                assert delay >= int(value), key
    undrained = groups(render(*layers(name), {"drain": {"enabled": False}}))
    assert all(drain_deadline(g) is None for g in undrained.values())


def test_capacity_of_the_defaults_matches_the_docs(render: Render) -> None:
    """The Whisper models' replicas fit the Whisper pool the defaults declare (the numbers
    docs/DEPLOYMENT.md gives)."""
    objects = render()
    whisper = groups(objects)["whisper"]
    found = deployments(objects)
    models = [d for n, d in found.items() if n.startswith("whisper-")]
    most = sum(d["autoscaling_config"]["max_replicas"] for d in models)
    gpus = sum(d["autoscaling_config"]["max_replicas"] * d["ray_actor_options"]["num_gpus"]
               for d in models)  # fmt: skip
    per_pod = int(whisper["rayStartParams"]["resources"].split(":")[1].strip(' }"\\'))
    assert most <= whisper["maxReplicas"] * per_pod
    assert gpus <= whisper["maxReplicas"] * int(whisper["rayStartParams"]["num-gpus"])
    text = (gen.REPO_ROOT / "docs" / "DEPLOYMENT.md").read_text(encoding="utf-8")
    per_model = models[0]["autoscaling_config"]["max_replicas"]
    assert f"{len(models)} Whisper models x {per_model}" in text


def test_pod_knobs_reach_the_pods(render: Render) -> None:
    objects = render(*layers("ha"))
    found = groups(objects)
    whisper = found["whisper"]["template"]["spec"]
    assert whisper["runtimeClassName"] == "nvidia" and whisper["priorityClassName"] == "theo-gpu"
    (spread,) = whisper["topologySpreadConstraints"]
    labels = found["whisper"]["template"]["metadata"]["labels"]
    assert spread["labelSelector"]["matchLabels"] == labels
    assert {"name": "certs", "configMap": {"name": "corp-ca"}} in whisper["volumes"]
    assert {"name": "certs", "mountPath": "/etc/ssl/corp", "readOnly": True} in (
        ray_container(found["whisper"])["volumeMounts"]
    )
    assert found["head"]["template"]["spec"]["priorityClassName"] == "theo-control"
    gateway = found["gateway"]["template"]["spec"]
    assert gateway["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert "runtimeClassName" not in gateway
    assert deployments(objects)["Gateway"]["max_replicas_per_node"] == 2


# ---- metrics --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_one_metrics_path(render: Render, name: str) -> None:
    """Only Ray's per-pod export is scraped (no ServiceMonitor on the gateway's merged
    /metrics); the PodMonitor selects exactly the Ray pods and labels series by release."""
    objects = render(*layers(name), {"monitoring": {"podMonitor": {"enabled": True}}})
    kinds = {o["kind"] for o in objects}
    assert "ServiceMonitor" not in kinds
    monitor = ks.only(objects, "PodMonitor")
    selector = monitor["spec"]["selector"]
    for group in groups(objects).values():
        assert _selects(selector, group["template"]["metadata"]["labels"])
    others = ks.by_kind(objects, "Pod") + [
        j["spec"]["template"] for j in ks.by_kind(objects, "Job")
    ]
    for pod in others:
        assert not _selects(selector, pod["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets["release"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"]


def test_alerts_parse_and_select_the_release(render: Render) -> None:
    import promql_parser

    objects = render(*layers("default-gpu"))
    rules = [r for g in ks.only(objects, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    names = [r["alert"] for r in rules]
    assert {"TheoRayServiceNotReady", "TheoNoHealthyGateway", "TheoEngineQueueNearLimit",
            "TheoMetricsAbsent", "TheoDeploymentWithoutHealthyReplica"} <= set(names)  # fmt: skip
    for rule in rules:
        promql_parser.parse(rule["expr"])
        if rule["alert"] == "TheoRayServiceNotReady":
            assert 'name="theo", namespace="stt"' in rule["expr"]
        else:
            assert 'namespace="stt", release="theo"' in rule["expr"], rule["alert"]
    assert "absent(" in next(r["expr"] for r in rules if r["alert"] == "TheoMetricsAbsent")
    settings = gen.settings_from_values(gen.chart_values(*layers("default-gpu")))
    queue = {r["labels"]["engine"]: r["expr"] for r in rules
             if r["alert"] == "TheoEngineQueueNearLimit"}  # fmt: skip
    assert set(queue) == {"whisper", "wenet"}
    for key, expr in queue.items():
        limit = getattr(settings, key).max_queued_requests * 0.8
        assert expr.endswith(f"> {limit:g}") and f'deployment=~"{key}-.*"' in expr, expr
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(x[5m]) by (le)")


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
    "second metrics path": ({"monitoring": {"serviceMonitor": {"enabled": True}}},
                            "'serviceMonitor' not allowed"),
    "budget that blocks drains": ({"podDisruptionBudget": {"maxUnavailable": 0}},
                                  "/podDisruptionBudget/maxUnavailable"),
    "deprecated metrics interval": (
        {"settings": {"whisper": {"autoscaling": {"metrics_interval_s": 2}}}},
        "'metrics_interval_s' not allowed"),
    "look-back within the push interval": (
        {"settings": {"whisper": {"autoscaling": {"look_back_period_s": 5}}}}, "look_back"),
    "manifest source in the manifest": ({"models": [{"manifest": {
        "name": "m", "engine": "wenet", "capabilities": {"architecture": "ctc"},
        "source": {"uri": "x"}}}]}, "'source' not allowed"),
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
    "Whisper replicas beyond the pool": (
        {"settings": {"whisper": {"autoscaling": {"max_replicas": 8}}}},
        "engines.whisper holds at most 8 replicas (maxReplicas 4 x replicasPerPod 2), but its "
        "2 model(s) (whisper-tiny.en, whisper-base) may run 8 each"),
    "fixed replicas beyond the pool": (
        {"settings": {"wenet": {"autoscaling": None, "num_replicas": 9}}},
        "engines.wenet holds at most 8 replicas"),
    "gateway CPUs beyond the pool": (
        {"settings": {"gateway": {"autoscaling": {"max_replicas": 20}}}},
        "20 gateway replicas x settings.gateway.num_cpus 0.5 need 10 CPUs"),
    "per-node cap beyond the pool": (
        {"settings": {"gateway": {"max_replicas_per_node": 1}}},
        "8 gateway replicas at most 1 per node need more than gateway.maxReplicas 4 pods"),
    "drain shorter than graceful shutdown": (
        {"engines": {"whisper": {"terminationGracePeriodSeconds": 100}}},
        "engines.whisper.terminationGracePeriodSeconds (100) - drain.stopMarginSeconds (15) = 85"),
    "old cluster deleted before the Ingress timeout": (
        {"ingress": {"enabled": True}, "rayService": {"rayClusterDeletionDelaySeconds": 600}},
        "shorter than the Ingress's nginx.ingress.kubernetes.io/proxy-read-timeout (3600 s)"),
    "old cluster deleted before the gateway stops": (
        {"rayService": {"rayClusterDeletionDelaySeconds": 60}},
        "shorter than settings.gateway.graceful_shutdown_timeout_s"),
    "incremental without a gateway class": (
        {"rayService": {"upgradeStrategy": "NewClusterWithIncrementalUpgrade"}},
        "needs rayService.clusterUpgradeOptions.gatewayClassName"),
    "incremental without the autoscaler": (
        {"rayService": {"upgradeStrategy": "NewClusterWithIncrementalUpgrade",
                        "clusterUpgradeOptions": {"gatewayClassName": "istio"}},
         "autoscaler": {"enabled": False}}, "needs the Ray autoscaler"),
    "incremental behind an Ingress": (
        {"rayService": {"upgradeStrategy": "NewClusterWithIncrementalUpgrade",
                        "clusterUpgradeOptions": {"gatewayClassName": "istio"}},
         "ingress": {"enabled": True}}, "must enter through the Gateway KubeRay creates"),
    "step above surge": (
        {"rayService": {"upgradeStrategy": "NewClusterWithIncrementalUpgrade",
                        "clusterUpgradeOptions": {"gatewayClassName": "istio",
                                                  "stepSizePercent": 50}}},
        "stepSizePercent must not exceed maxSurgePercent"),
    "GCS fault tolerance without Redis": (
        {"gcsFaultTolerance": {"enabled": True}}, "needs gcsFaultTolerance.redisAddress"),
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
