"""Offline validation of rendered Kubernetes objects.

- Built-in kinds: `kubernetes-validate` in strict mode (unknown fields rejected) against the
  oldest and newest Kubernetes versions the chart supports.
- RayService / PodMonitor / ServiceMonitor / PrometheusRule: the CRDs' openAPIV3Schema from
  `../shared/k8s/crds`, made strict like kubeconform (`additionalProperties: false` wherever a
  schema lists properties and does not preserve unknown fields).
- Objects embedded in a RayService (its Service and pod templates) are validated again as the
  built-in kinds they are, and `serveConfigV2` with Ray's own `ServeDeploySchema`.
- The RayService rules KubeRay's webhook-less validation applies at reconcile time
  (ray-operator/controllers/ray/utils/validation.go, v1.7.0), restated here.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from ray.serve.schema import ServeDeploySchema

REPO_ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = REPO_ROOT.parent / "shared" / "k8s" / "crds"
KUBE_VERSIONS = ("1.28", "1.35")
"""The chart's `kubeVersion` floor and a current release."""

MAX_RAYSERVICE_NAME = 47
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class ValidationFailure(AssertionError):
    pass


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {key: _strict(value) for key, value in node.items()}
        keeps_unknown = node.get("x-kubernetes-preserve-unknown-fields") is True
        if "properties" in node and "additionalProperties" not in node and not keeps_unknown:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(value) for value in node]
    return node


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> strict validator, for every served version of every CRD."""
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            validator = jsonschema.Draft202012Validator(schema)
            validators[(f"{group}/{version['name']}", kind)] = validator
    return validators


def _fail(where: str, error: jsonschema.ValidationError) -> ValidationFailure:
    path = ".".join(str(p) for p in error.absolute_path) or "<root>"
    return ValidationFailure(f"{where}: {path}: {error.message}")


def validate_builtin(obj: dict[str, Any], where: str) -> None:
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise _fail(f"{where} (Kubernetes {version})", exc) from None


def validate_metadata(obj: dict[str, Any], where: str) -> None:
    """CRD schemas leave `metadata` open; check it as ObjectMeta through a ConfigMap."""
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata", {})}
    validate_builtin(probe, f"{where} metadata")


def validate_custom(obj: dict[str, Any], where: str) -> None:
    key = (obj["apiVersion"], obj["kind"])
    validator = crd_validators().get(key)
    if validator is None:
        raise ValidationFailure(f"{where}: no CRD for {key}")
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is not None:
        raise _fail(where, error)
    validate_metadata(obj, where)


def is_custom(obj: dict[str, Any]) -> bool:
    return obj["apiVersion"].split("/")[0] in {"ray.io", "monitoring.coreos.com"}


def ray_groups(rayservice: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    cluster = rayservice["spec"]["rayClusterConfig"]
    yield "head", cluster["headGroupSpec"]
    for group in cluster.get("workerGroupSpecs", []):
        yield group["groupName"], group


def embedded_objects(rayservice: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Service and pod templates inside a RayService, as standalone built-in objects."""
    name = rayservice["metadata"]["name"]
    service = rayservice["spec"].get("serveService")
    if service is not None:
        yield f"{name}.serveService", {"apiVersion": "v1", "kind": "Service", **service}
    for group, spec in ray_groups(rayservice):
        template = {"apiVersion": "v1", "kind": "PodTemplate"}
        template["metadata"] = {"name": f"{name}-{group}"}
        template["template"] = spec["template"]
        yield f"{name}.{group}.template", template


def serve_config(rayservice: dict[str, Any]) -> dict[str, Any]:
    config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    if not isinstance(config, dict):
        raise ValidationFailure("serveConfigV2 is not a YAML mapping")
    return config


def validate_serve_config(rayservice: dict[str, Any], where: str) -> None:
    try:
        ServeDeploySchema.model_validate(serve_config(rayservice))
    except ValueError as exc:
        raise ValidationFailure(f"{where}: serveConfigV2: {exc}") from None


def kuberay_rules(rayservice: dict[str, Any], where: str) -> None:
    """What KubeRay v1.7.0 rejects at reconcile time (after the API server accepted it)."""
    name = rayservice["metadata"]["name"]
    problems = []
    if len(name) > MAX_RAYSERVICE_NAME or not DNS1035.match(name):
        problems.append(f"name {name!r}: need a DNS-1035 label of <= {MAX_RAYSERVICE_NAME}")
    spec = rayservice["spec"]
    cluster = spec["rayClusterConfig"]
    upgrade = (spec.get("upgradeStrategy") or {}).get("type")
    if upgrade not in (None, "NewCluster", "NewClusterWithIncrementalUpgrade", "None"):
        problems.append(f"upgradeStrategy.type {upgrade!r}")
    autoscaling = cluster.get("enableInTreeAutoscaling") is True
    v2 = autoscaling and (cluster.get("autoscalerOptions") or {}).get("version") == "v2"
    for group, gspec in ray_groups(rayservice):
        params = gspec.get("rayStartParams") or {}
        if gspec.get("resources") and any(
            params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")
        ):
            problems.append(f"{group}: resources in both rayStartParams and resources")
        if "labels" in params:
            problems.append(f"{group}: rayStartParams['labels'] is not supported")
        pod = gspec["template"]["spec"]
        if not pod.get("containers"):
            problems.append(f"{group}: no container")
        if v2 and pod.get("restartPolicy") not in (None, "Never"):
            problems.append(f"{group}: autoscaler v2 needs restartPolicy Never or unset")
        if group != "head" and not gspec["minReplicas"] <= gspec["maxReplicas"]:
            problems.append(f"{group}: minReplicas > maxReplicas")
        if "idleTimeoutSeconds" in gspec and not v2:
            problems.append(f"{group}: idleTimeoutSeconds needs autoscaler v2 enabled")
    head_ports = cluster["headGroupSpec"]["template"]["spec"]["containers"][0].get("ports", [])
    if not any(p.get("name") == "serve" for p in head_ports) and "serveService" not in spec:
        problems.append("no port named 'serve' on the head container")
    if problems:
        raise ValidationFailure(f"{where}: " + "; ".join(problems))


@dataclass
class ValidationReport:
    objects: int = 0
    embedded: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


def object_name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def validate_objects(objects: list[dict[str, Any]]) -> ValidationReport:
    """Validate every object (and what a RayService embeds); raise on the first failure."""
    report = ValidationReport()
    for obj in objects:
        where = object_name(obj)
        if is_custom(obj):
            validate_custom(obj, where)
        else:
            validate_builtin(obj, where)
        report.objects += 1
        report.count(obj["kind"])
        if obj["kind"] == "RayService":
            for inner_where, inner in embedded_objects(obj):
                validate_builtin(inner, inner_where)
                report.embedded += 1
            validate_serve_config(obj, where)
            kuberay_rules(obj, where)
    return report


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def all_containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]


def strip_helm_labels(obj: Any) -> Any:
    """A copy without Helm's bookkeeping labels (absent from the plain k8s/ manifests)."""
    out = copy.deepcopy(obj)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            labels = node.get("labels")
            if isinstance(labels, dict):
                labels.pop("helm.sh/chart", None)
                labels.pop("app.kubernetes.io/managed-by", None)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def typed(value: Any) -> Any:
    """Comparable form that keeps bool, number and string apart (1 == 1.0, True != 1)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return value


def differences(expected: Any, actual: Any, path: str = "") -> str:
    """Where two documents differ, one line per path (for assertion messages)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = sorted(set(expected) | set(actual), key=str)
        parts = [differences(expected.get(k, "<missing>"), actual.get(k, "<missing>"),
                             f"{path}.{k}") for k in keys]  # fmt: skip
        return "".join(parts)
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return "".join(
            differences(e, a, f"{path}[{i}]")
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
        )
    if typed(expected) != typed(actual):
        builder, chart = (json.dumps(v, default=str)[:200] for v in (expected, actual))
        return f"\n{path or '<root>'}: builder {builder}, chart {chart}"
    return ""
