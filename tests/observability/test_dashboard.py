"""The Grafana dashboard: generated copies are current, every query parses, every metric it
reads is one the service (or Ray Serve) really exports, and the chart ships it as a ConfigMap
next to a PodMonitor that maps Ray's `ray_theo_*` names back to `theo_*`."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from serve.deploy import chart as gen
from serve.deploy.helmtool import get_helm, load_documents
from serve.telemetry import dashboard
from tests import k8s_support as ks

DOC = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
NAME = re.compile(r"\b((?:theo|ray_serve)_[a-z_]+)")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def queries() -> list[str]:
    board = json.loads(DOC.read_text(encoding="utf-8"))
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def family(sample: str) -> str:
    for suffix in SUFFIXES:
        if sample.endswith(suffix):
            return sample[: -len(suffix)]
    return sample


def test_written_copies_are_current() -> None:
    assert dashboard.main(["--check"]) == 0, "run: python -m serve.telemetry.dashboard"


VARIABLES = {"$__rate_interval": "1m", "$model": ".*", "$namespace": ".*", "$release": ".*"}


def test_every_query_parses_and_filters_by_namespace_and_release() -> None:
    """One Prometheus holds several installations (and other Ray clusters): every query selects
    the `namespace` and `release` variables on every series it reads."""
    import promql_parser

    exprs = queries()
    assert len(exprs) >= 20
    for expr in exprs:
        for name, value in VARIABLES.items():
            expr = expr.replace(name, value)
        promql_parser.parse(expr)
    for expr in exprs:
        for metric in NAME.findall(expr):
            selector = expr.split(metric, 1)[1]
            assert selector.startswith(("{", "_bucket{", "_sum{", "_count{", "_total{")), expr
            assert 'namespace=~"$namespace", release=~"$release"' in selector.split("}")[0], expr
    board = json.loads(DOC.read_text(encoding="utf-8"))
    variables = [v["name"] for v in board["templating"]["list"]]
    assert variables == ["datasource", "namespace", "release", "model"]


def test_every_metric_read_is_exported(serve_url: str) -> None:
    import ray

    read = {family(n) for expr in queries() for n in NAME.findall(expr)}
    missing = httpx.get(f"{serve_url}/v1/models/no-such-model", timeout=30)
    assert missing.status_code in (401, 404)  # an HTTP error for Serve's error counter
    exposition = httpx.get(f"{serve_url}/metrics", timeout=30).text
    declared = {family(m) for m in re.findall(r"^# TYPE (theo_\w+) ", exposition, re.M)}
    missing_theo = {n for n in read if n.startswith("theo_")} - declared
    assert not missing_theo, missing_theo

    port = ray._private.worker.global_worker.node.metrics_export_port
    wanted = {n for n in read if n.startswith("ray_serve_")}
    exported: set[str] = set()
    for _ in range(30):
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        exported = {family(m) for m in re.findall(r"^# TYPE (ray_serve_\w+) ", text, re.M)}
        if wanted <= exported:
            break
        time.sleep(1)
    # The autoscaler's target is exported for autoscaling deployments only (the session's
    # service has fixed replicas); loadtests/autoscale_demo.py reads it from a live one.
    assert wanted - exported <= {"ray_serve_autoscaling_target_replicas"}, wanted - exported


@pytest.mark.timeout(300)
def test_chart_ships_the_dashboard_and_maps_ray_names() -> None:
    values = {
        "monitoring": {
            "podMonitor": {"enabled": True},
            "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Theo"}},
        }
    }
    objects = load_documents(get_helm().template(gen.CHART_DIR, [values], "theo", "stt"))
    report = ks.validate_objects(objects)
    assert "ConfigMap" in report.kinds and "PodMonitor" in report.kinds
    configmap = next(
        o for o in ks.by_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("dashboard")
    )
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Theo"}
    shipped = json.loads(configmap["data"]["theo-dashboard.json"])
    assert shipped == json.loads(DOC.read_text(encoding="utf-8"))
    endpoint = ks.only(objects, "PodMonitor")["spec"]["podMetricsEndpoints"][0]
    relabel = endpoint["metricRelabelings"][0]
    assert re.fullmatch(relabel["regex"], "ray_theo_requests_total")
    assert re.sub(relabel["regex"], "\\1", "ray_theo_requests_total") == "theo_requests_total"
    assert relabel["targetLabel"] == "__name__" and relabel["replacement"] == "$1"
    targets = {r["targetLabel"] for r in endpoint["relabelings"]}
    assert "release" in targets  # what the dashboard's `release` variable reads
    plain = load_documents(get_helm().template(gen.CHART_DIR, [], "theo", "stt"))
    assert not [o for o in ks.by_kind(plain, "ConfigMap") if "dashboard" in o["metadata"]["name"]]
