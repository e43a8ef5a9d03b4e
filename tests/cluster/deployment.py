"""The chart values the harness installs with, the rendered release, and the deployed cluster.

The values are an operator's values file for a CPU cluster with the contract test models: the
chart renders the RayService from them (`helm template`, the real Helm), and the harness starts
that RayService's pods and submits its `serveConfigV2`. Nothing of the cluster's shape or Serve
config is written here in Python: groups, `rayStartParams`, images, env and the Serve config
all come from the rendered chart.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from serve.deploy.chart import chart_values
from serve.deploy.helmtool import CHART_DIR, get_helm, load_documents
from tests.cluster.harness import Cluster, Node, serve_config_of
from tests.conftest import API_KEY, CONTRACT_MODELS

RELEASE = "theo"
NAMESPACE = "theo"
ENGINE_SETTINGS = {
    "device": "cpu",
    "compute_type": "int8",
    "num_gpus": 0,
    "num_cpus": 1,
    "autoscaling": None,
}


def harness_values(models_dir: Path, port: int) -> dict[str, Any]:
    """A CPU cluster: two gateway pods, one Whisper pod with room for two replicas (a second
    model is added under traffic), two WeNet pods with one replica each (one is killed)."""
    models = [
        {"source": "", "manifest": _manifest(models_dir / name)}
        for name in sorted(CONTRACT_MODELS.values())
    ]
    return {
        "settings": {
            "host": "127.0.0.1",
            "port": port,
            "models_dir": str(models_dir),
            "gateway": {
                "autoscaling": None,
                "num_replicas": 2,
                "graceful_shutdown_timeout_s": 60,
            },
            "whisper": {
                **ENGINE_SETTINGS,
                "num_replicas": 1,
                "max_batch_size": 8,
                "batch_wait_timeout_s": 0.1,
                "graceful_shutdown_timeout_s": 30,
            },
            "wenet": {**ENGINE_SETTINGS, "num_replicas": 2, "graceful_shutdown_timeout_s": 30},
        },
        "models": models,
        # Ray token auth off: on this machine every Ray process runs with RAY_AUTH_MODE=disabled.
        # A real cluster keeps the chart's default (on); the harness does not exercise it.
        "rayAuth": {"enabled": False},
        "gateway": {"replicas": 2, "rayCpus": 1},
        "engines": {
            "whisper": {"gpus": 0, "replicasPerPod": 2, "replicas": 1},
            "wenet": {"gpus": 0, "replicasPerPod": 1, "replicas": 2},
        },
    }


def _manifest(directory: Path) -> dict[str, Any]:
    data = yaml.safe_load((directory / "theo.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    if data.get("source") is None:
        data.pop("source", None)  # provenance of a pulled model; the chart's values refuse a null
    return data


def with_model(values: Mapping[str, Any], directory: Path) -> dict[str, Any]:
    changed = copy.deepcopy(dict(values))
    changed["models"].append({"source": "", "manifest": _manifest(directory)})
    return changed


def with_settings(values: Mapping[str, Any], engine: str, **settings: Any) -> dict[str, Any]:
    changed = copy.deepcopy(dict(values))
    changed["settings"][engine].update(settings)
    return changed


def render(values: Mapping[str, Any]) -> dict[str, Any]:
    """The RayService of `helm template` with these values."""
    text = get_helm().template(CHART_DIR, [values], RELEASE, NAMESPACE)
    (service,) = [d for d in load_documents(text) if d.get("kind") == "RayService"]
    return service


@dataclass
class Deployed:
    cluster: Cluster
    values: dict[str, Any]
    rayservice: dict[str, Any]

    @property
    def app(self) -> str:
        return str(serve_config_of(self.rayservice)["applications"][0]["name"])

    @property
    def gateways(self) -> list[Node]:
        return self.cluster.group("gateway")

    @property
    def url(self) -> str:
        """The first gateway pod's Serve proxy: where the contract tests send their traffic."""
        return self.gateways[0].serve_url

    def apply(self, values: Mapping[str, Any]) -> None:
        """`helm upgrade` with new values: KubeRay PUTs the new serveConfigV2 (the pods stay:
        the harness refuses a change of the cluster's shape, which would be a new cluster)."""
        service = render(values)
        before = self.rayservice["spec"]["rayClusterConfig"]
        if service["spec"]["rayClusterConfig"] != before:
            raise ValueError("these values change the RayCluster, not just serveConfigV2")
        self.cluster.deploy(serve_config_of(service))
        self.values, self.rayservice = dict(values), service

    def healthy(self, node: Node | None = None) -> bool:
        url = (node or self.gateways[0]).serve_url
        try:
            return httpx.get(f"{url}/health", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False


def start(models_dir: Path, port: int) -> Deployed:
    values = harness_values(models_dir, port)
    service = render(values)
    cluster = Cluster(service, chart_values(values), env={"THEO_API_KEYS": API_KEY})
    try:
        cluster.start()
        deployed = Deployed(cluster, values, service)
        cluster.deploy(serve_config_of(service))
        cluster.timings["deploy_s"] = cluster.wait_application(deployed.app)
    except BaseException:
        cluster.stop()
        raise
    return deployed
