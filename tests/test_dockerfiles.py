"""The images' Dockerfiles, parsed (no Docker engine here): bases, stages, user, pins, tools.
The gateway image, and one image per registered engine that declares one (`EngineSpec.image`)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from engines.spec import registered_engines

ROOT = Path(__file__).resolve().parents[1]
ENGINE_IMAGES = [spec for spec in registered_engines().values() if spec.image]
IMAGES = {"gateway": "Dockerfile.gateway", **{s.key: str(s.image) for s in ENGINE_IMAGES}}
EXTRAS = {"gateway": ".", **{s.key: f".[{s.extra}]" if s.extra else "." for s in ENGINE_IMAGES}}


@dataclass(frozen=True)
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]]

    def values(self, instruction: str) -> list[str]:
        return [value for kind, value in self.instructions if kind == instruction]


@dataclass(frozen=True)
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def resolve(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: self.global_args.get(m.group(1), m.group(0)), text)


def parse(name: str) -> Dockerfile:
    with (ROOT / name).open("rb") as handle:
        structure = DockerfileParser(fileobj=handle).structure
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in structure:
        kind, value = item["instruction"], item["value"]
        if kind == "FROM":
            base, _, stage = value.partition(" AS ")
            stages.append(Stage(base=base.strip(), name=stage.strip(), instructions=[]))
        elif kind == "ARG" and not stages:
            key, _, default = value.partition("=")
            global_args[key] = default
        elif stages:
            stages[-1].instructions.append((kind, value))
    return Dockerfile(global_args, stages)


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pinned(requirement_prefix: str, requirements: list[str]) -> str:
    for requirement in requirements:
        if requirement.startswith(requirement_prefix + "=="):
            return requirement.split("==", 1)[1]
    raise AssertionError(f"{requirement_prefix} is not pinned in pyproject.toml")


@pytest.fixture(scope="module", params=sorted(IMAGES))
def image(request: pytest.FixtureRequest) -> tuple[str, Dockerfile]:
    return request.param, parse(IMAGES[request.param])


def test_every_engine_declaration_points_at_real_files() -> None:
    """The image and the extra an engine declares exist, and `make install` (the `engines`
    extra) installs every engine's extra."""
    extras = pyproject()["project"]["optional-dependencies"]  # type: ignore[index]
    (everything,) = extras["engines"]
    installed = set(re.fullmatch(r"theo\[([\w,-]+)\]", everything).group(1).split(","))  # type: ignore[union-attr]
    for spec in registered_engines().values():
        if spec.image is not None:
            assert (ROOT / spec.image).is_file(), spec
        if spec.extra is not None:
            assert spec.extra in extras and spec.extra in installed, spec


def test_same_python_and_ray_in_every_image() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    ray_pin = pinned("ray[serve]", project["dependencies"])
    parsed = {name: parse(path) for name, path in IMAGES.items()}
    pythons = {name: d.global_args.get("PYTHON_VERSION") for name, d in parsed.items()}
    rays = {name: d.global_args.get("RAY_VERSION") for name, d in parsed.items()}
    assert len(set(pythons.values())) == 1, pythons
    assert set(rays.values()) == {ray_pin}, (rays, ray_pin)
    python = next(iter(pythons.values()))
    assert python and re.fullmatch(r"3\.(11|12)\.\d+", python), python
    low, high = project["requires-python"].split(",")
    assert low == ">=3.11" and high == "<3.13", "update the PYTHON_VERSION pattern above"


def test_multi_stage_with_the_venv_copied_from_the_build_stage(
    image: tuple[str, Dockerfile],
) -> None:
    _, dockerfile = image
    names = [stage.name for stage in dockerfile.stages]
    assert "build" in names and len(dockerfile.stages) >= 3, names
    copies = dockerfile.final.values("COPY")
    assert "--from=build /opt/venv /opt/venv" in copies
    assert "--from=build /opt/python /opt/python" in copies
    build = next(stage for stage in dockerfile.stages if stage.name == "build")
    assert not build.values("USER"), "the build stage needs no user"


def test_runtime_base_matches_the_engine_libraries(image: tuple[str, Dockerfile]) -> None:
    name, dockerfile = image
    base = dockerfile.resolve(dockerfile.final.base)
    if name == "whisper":
        # CTranslate2 4.x GPU wheels: CUDA 12 (built with 12.4) and cuDNN 9.
        match = re.fullmatch(r"nvidia/cuda:12\.(\d+)\.\d+-cudnn-runtime-ubuntu\d+\.\d+", base)
        assert match and int(match.group(1)) >= 4, base
    elif name == "wenet":
        match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(cudnn-)?runtime-ubuntu[\d.]+", base)
        assert match, base
        torch_cuda = dockerfile.global_args["TORCH_CUDA"]
        assert torch_cuda == f"cu{match.group(1)}{match.group(2)}", (torch_cuda, base)
        wenet = pyproject()["project"]["optional-dependencies"]["wenet"]  # type: ignore[index]
        assert dockerfile.global_args["TORCH_VERSION"] == pinned("torch", wenet)
    else:
        assert re.fullmatch(r"ubuntu:\d+\.\d+", base), base
    build = next(stage for stage in dockerfile.stages if stage.name == "build")
    assert dockerfile.resolve(build.base).startswith("ubuntu:"), "same glibc family everywhere"


def test_wenet_torch_comes_from_the_pytorch_cuda_index() -> None:
    dockerfile = parse(IMAGES["wenet"])
    build = next(stage for stage in dockerfile.stages if stage.name == "build")
    install = " ".join(build.values("RUN"))
    assert "https://download.pytorch.org/whl/${TORCH_CUDA}" in install
    assert '"torch==${TORCH_VERSION}+${TORCH_CUDA}"' in install
    assert install.index("torch==") < install.index('".[wenet]"'), "CUDA torch first"


def test_app_installed_with_its_engine_extra(image: tuple[str, Dockerfile]) -> None:
    name, dockerfile = image
    build = next(stage for stage in dockerfile.stages if stage.name == "build")
    install = " ".join(build.values("RUN"))
    assert f'"{EXTRAS[name]}"' in install
    assert '"ray[serve]==${RAY_VERSION}"' in install
    checks = " ".join(dockerfile.final.values("RUN"))
    assert "import sys, ray, serve.app, serve.builder, engines.manifest" in checks
    assert "theo --help" in checks


def test_runs_as_a_numeric_non_root_user(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    users = dockerfile.final.values("USER")
    assert users, "no USER in the runtime stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, users  # numeric: runAsNonRoot can verify it
    assert gid.isdigit() and int(gid) != 0, users
    setup = " ".join(dockerfile.final.values("RUN"))
    assert f"useradd --uid {uid} --gid {gid}" in setup


def test_probe_tools_models_dir_and_no_healthcheck(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    setup = " ".join(dockerfile.final.values("RUN"))
    apt = re.search(r"apt-get install -y --no-install-recommends ([^&]+)", setup)
    assert apt, setup
    packages = set(apt.group(1).split())
    assert {"bash", "wget", "grep"} <= packages, packages  # KubeRay's probes
    assert "util-linux" in packages  # flock, for the chart's model-pull init container
    assert "mkdir -p /models" in setup and "chown 1000:1000 /models" in setup
    env = " ".join(dockerfile.final.values("ENV"))
    assert "THEO_MODELS_DIR=/models" in env
    assert "PATH=/opt/venv/bin:" in env
    every = [kind for stage in dockerfile.stages for kind, _ in stage.instructions]
    assert "HEALTHCHECK" not in every


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: exclude everything first"
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for name in IMAGES.values():
        build = next(stage for stage in parse(name).stages if stage.name == "build")
        for value in build.values("COPY"):
            if not value.startswith("--from"):
                copied.update(value.split()[:-1])
    assert copied <= kept, (copied, kept)
    assert "**/__pycache__" in lines
