"""The engine seam: engines declare themselves once (`engines.spec`), everything else loops
over the registry, capabilities choose behaviour, and imports point one way."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engines.base import NativeStreamingBackend, STTBackend
from engines.manifest import ManifestError, ModelManifest, load_manifest
from engines.spec import EngineSpec, Streaming, load_object, registered_engines, streams_natively
from serve.builder import STICKY_ROUTER_CLASS, engine_options
from serve.deployments.contract import FileServing, StreamServing
from serve.settings import TheoSettings

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(registered_engines().values(), key=lambda spec: spec.name)


def test_the_repository_registers_its_engines_through_entry_points() -> None:
    """The registry is what pyproject.toml's `theo.engines` entry points publish."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    points = project["entry-points"]["theo.engines"]
    assert {"faster-whisper", "wenet"} <= set(points)
    assert set(registered_engines()) == set(points)
    for name, target in points.items():
        module, _, attribute = target.partition(":")
        assert load_object(target) is registered_engines()[name], (module, attribute)
    assert len({spec.key for spec in SPECS}) == len(SPECS)


def test_an_unknown_engine_is_a_clear_error_naming_the_registered_ones(tmp_path: Path) -> None:
    path = tmp_path / "theo.yaml"
    path.write_text("name: m\nengine: kaldi\ncapabilities: {architecture: ctc}\n", "utf-8")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.field == "engine"
    known = ", ".join(registered_engines())
    assert f"unknown engine 'kaldi'; registered engines: {known}" in str(info.value)
    assert "faster-whisper" in known and "wenet" in known


def test_a_spec_is_checked_when_it_is_declared() -> None:
    with pytest.raises(ValueError, match="key"):
        EngineSpec(name="x", key="Bad-Key", backend="m:B")
    with pytest.raises(ValueError, match="not a field"):
        EngineSpec(name="x", key="x", backend="m:B", user_config=("max_batch_size",))


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_the_declared_streaming_is_the_backend_contract(spec: EngineSpec) -> None:
    backend = spec.backend_class()
    assert issubclass(backend, STTBackend)
    assert issubclass(backend, NativeStreamingBackend) == (spec.streaming is Streaming.NATIVE)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_the_deployment_serves_the_contracts(spec: EngineSpec) -> None:
    """Every method the gateway calls exists on the engine's deployment class."""
    deployment = load_object(spec.deployment)
    cls = deployment.func_or_class
    contracts = [FileServing] + ([StreamServing] if spec.streams_natively else [])
    for contract in contracts:
        members = [m for m in vars(contract) if not m.startswith("_")]
        missing = [m for m in members if not callable(getattr(cls, m, None))]
        assert not missing, (spec.name, contract.__name__, missing)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_an_engine_imports_without_the_libraries_of_any_engine(spec: EngineSpec) -> None:
    """Every image imports every spec and the backend modules: engine libraries are imported
    lazily, inside the backend."""
    blocked = sorted({lib for s in SPECS for lib in s.libraries} - {"onnxruntime"})
    probe = f"""
import importlib, importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
from engines.spec import engine_spec
spec = engine_spec({spec.name!r})
print(spec.backend_class().__name__)
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == spec.backend.split(":")[1]


def test_settings_loop_over_the_registry_and_keep_their_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THEO_WHISPER__MAX_BATCH_SIZE", "24")
    monkeypatch.setenv("THEO_WHISPER__CPU_THREADS", "3")
    monkeypatch.setenv("THEO_WENET__CPU_THREADS", "2")
    monkeypatch.setenv("THEO_REALTIME__PARTIAL_INTERVAL_MS", "300")
    settings = TheoSettings()
    for spec in SPECS:
        assert isinstance(settings.engine(spec), spec.settings)
    whisper, wenet = settings.engine("faster-whisper"), settings.engine("wenet")
    assert getattr(whisper, "max_batch_size") == 24  # noqa: B009
    assert whisper.backend_overrides()["cpu_threads"] == 3
    assert wenet.cpu_threads == 2
    assert wenet.backend_overrides() == {}, "parallel steps, each on the model's own threads"
    assert settings.realtime.partial_interval_ms == 300


def manifest(engine: str, streaming: bool) -> ModelManifest:
    return ModelManifest.model_validate(
        {
            "name": "m",
            "engine": engine,
            "capabilities": {"architecture": "ctc", "streaming": streaming},
        }
    )


@pytest.mark.parametrize(
    ("engine", "streaming", "native"),
    [
        ("wenet", True, True),
        ("wenet", False, False),  # an offline CTC export: no streaming state
        ("faster-whisper", True, False),  # the engine cannot stream natively
        ("faster-whisper", False, False),
    ],
)
def test_the_sticky_router_follows_declared_native_streaming(
    engine: str, streaming: bool, native: bool
) -> None:
    model = manifest(engine, streaming)
    assert streams_natively(model) is native
    options = engine_options(TheoSettings(), model)
    router = options.get("request_router_config", {}).get("request_router_class")
    assert router == (STICKY_ROUTER_CLASS if native else None)
    assert set(options.get("user_config", {})) == set(registered_engines()[engine].user_config)
    assert options["ray_actor_options"]["resources"] == {registered_engines()[engine].key: 1.0}


# ---- imports point one way ------------------------------------------------------------------
def imports(path: Path) -> tuple[set[str], set[str]]:
    """(module-level imports, all imports) of a source file, TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: set[str] = set()
    every: set[str] = set()

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                names = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
            every.update(names)
            if module_level:
                top.update(names)
            inner = module_level and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            visit(child, inner)

    visit(tree, True)
    return top, every


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {
    module_name(p): p
    for package in ("serve", "engines", "cli")
    for p in (ROOT / package).rglob("*.py")
}


def test_imports_point_one_way() -> None:
    """cli -> serve -> engines; the gateway, realtime and telemetry know no particular engine
    (only an engine's own deployment, `serve/deployments/<key>.py`, imports its engine);
    telemetry imports neither the gateway nor realtime."""
    engine_packages = {f"engines.{p.name}" for p in (ROOT / "engines").iterdir() if p.is_dir()}
    own = {f"serve.deployments.{spec.key}": f"engines.{spec.key}" for spec in SPECS}
    problems = []
    for name, path in SOURCES.items():
        _, every = imports(path)
        for target in every:
            root = target.split(".")[0]
            if name.startswith("engines") and root in ("serve", "cli"):
                problems.append((name, target))
            if name.startswith("serve") and root == "cli":
                problems.append((name, target))
            package = ".".join(target.split(".")[:2])
            if name.startswith("serve") and package in engine_packages and own.get(name) != package:
                problems.append((name, target))
            if name.startswith("serve.telemetry") and target.startswith(
                ("serve.realtime", "serve.gateway")
            ):
                problems.append((name, target))
    assert not problems, problems


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for name, path in SOURCES.items():
        _, every = imports(path)  # lazy imports too: a cycle deferred is still a cycle
        graph[name] = {t for t in every if t in SOURCES and t != name}
        graph[name] |= {t.rsplit(".", 1)[0] for t in every if t.rsplit(".", 1)[0] in SOURCES}
        graph[name].discard(name)
    cycles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    # A package's __init__ importing its own modules is not a cycle of its design.
    cycles = [c for c in cycles if not all(m.startswith(c[0]) for m in c)]
    assert not cycles, cycles
