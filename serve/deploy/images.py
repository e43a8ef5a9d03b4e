"""The container images: one per kind of Ray pod, each with one extra and one lock file.

- `gateway` (`Dockerfile.gateway`, extra `gateway`): the head and the gateway pods;
- one image per registered engine that declares one (`EngineSpec.image`, `EngineSpec.extra`),
  named by the engine's key.

Each Dockerfile installs its lock file first (`locks/<image>.txt`: every package of the image's
extra, pinned, with hashes, resolved by uv for the images' platform), then the code. After a
change of pins in pyproject.toml:

    python -m serve.deploy.images          # rewrite locks/*.txt (needs PyPI)

`tests/test_dockerfiles.py` checks offline that every lock pins exactly what pyproject.toml pins
and holds no other image's engine library; the cluster harness (tests/cluster) builds one
environment per image from these locks.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engines.spec import registered_engines
from serve.deploy.helmtool import REPO_ROOT

LOCK_DIR = REPO_ROOT / "locks"
PYPROJECT = REPO_ROOT / "pyproject.toml"
PROJECT = "theo"
GATEWAY_IMAGE = "gateway"
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
"""What the locks are resolved for: the images' CPython minor and Linux x86_64 (glibc 2.28+;
the images run Ubuntu 24.04)."""
CUDA_BUILD_ONLY = re.compile(r"^(nvidia-.+|triton)$")
"""Packages that only a CUDA build of torch requires (PyPI's torch for Linux is that build). A
CPU-only environment (the cluster harness) installs the CPU build of the locked torch instead and
leaves these out."""
CPU_BUILD_OF = ("torch",)
"""Locked packages whose CUDA build a CPU-only environment replaces with the CPU build of the
same version (`pip install torch==X` takes the CPU wheel where one is staged)."""


@dataclass(frozen=True)
class Image:
    name: str
    """`gateway` or the engine's key."""
    dockerfile: str
    extra: str

    @property
    def lock(self) -> Path:
        return LOCK_DIR / f"{self.name}.txt"


def images() -> list[Image]:
    """The gateway image, then one per registered engine with an image, by engine name."""
    found = [Image(GATEWAY_IMAGE, "Dockerfile.gateway", GATEWAY_IMAGE)]
    for spec in registered_engines().values():
        if spec.image is not None:
            if spec.extra is None:
                raise ValueError(f"engine {spec.name!r} has an image but no extra")
            found.append(Image(spec.key, spec.image, spec.extra))
    return found


def image_named(name: str) -> Image:
    for image in images():
        if image.name == name:
            return image
    raise KeyError(f"no image {name!r}; images: {', '.join(i.name for i in images())}")


def normalize(name: str) -> str:
    """PEP 503 name: `PyYAML` -> `pyyaml`, `ray[serve]` -> `ray`."""
    return re.sub(r"[-_.]+", "-", name.split("[", 1)[0]).lower()


def _pyproject() -> dict[str, object]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def extra_pins(extra: str) -> dict[str, str]:
    """Name -> pinned version of everything pyproject.toml declares for `extra`: the project's
    dependencies and the extra's, following `theo[...]` references to other extras."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    extras: dict[str, list[str]] = project["optional-dependencies"]
    pins: dict[str, str] = {}
    seen: set[str] = set()

    def add(requirements: list[str]) -> None:
        for requirement in requirements:
            own = re.fullmatch(rf"{PROJECT}\[([\w,-]+)\]", requirement)
            if own:
                for name in own.group(1).split(","):
                    if name not in seen:
                        seen.add(name)
                        add(extras[name])
                continue
            name, sep, version = requirement.partition("==")
            if not sep:
                raise ValueError(f"{requirement!r} in pyproject.toml is not pinned with ==")
            pins[normalize(name)] = version.strip()

    add(list(project["dependencies"]))
    seen.add(extra)
    add(extras[extra])
    return pins


def read_lock(path: Path) -> dict[str, str]:
    """Name -> version of a `uv pip compile` lock file."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def lock_command(image: Image) -> list[str]:
    lock = image.lock.relative_to(REPO_ROOT)
    return [
        sys.executable, "-m", "uv", "pip", "compile", "pyproject.toml",
        "--extra", image.extra,
        "--python-version", PYTHON_VERSION,
        "--python-platform", PLATFORM,
        "--generate-hashes",
        "--quiet",
        "--custom-compile-command", "python -m serve.deploy.images",
        "--output-file", str(lock),
    ]  # fmt: skip


def compile_lock(image: Image) -> None:
    LOCK_DIR.mkdir(exist_ok=True)
    subprocess.run(lock_command(image), cwd=REPO_ROOT, check=True, timeout=600)


def cpu_requirements(image: Image) -> tuple[list[str], list[str]]:
    """The lock as a CPU-only environment installs it: (`pip install` arguments for the CPU
    builds of `CPU_BUILD_OF`, the lock's other lines without the CUDA-only packages)."""
    pins = read_lock(image.lock)
    cpu_builds = [f"{name}=={pins[name]}" for name in CPU_BUILD_OF if name in pins]
    skip = set(CPU_BUILD_OF) | {name for name in pins if CUDA_BUILD_ONLY.match(name)}
    kept: list[str] = []
    dropping = False
    for line in image.lock.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if match:
            dropping = normalize(match.group(1)) in skip
        elif not line.startswith((" ", "\t")):
            dropping = False
        if not dropping:
            kept.append(line)
    return cpu_builds, kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the images' lock files.")
    parser.add_argument("images", nargs="*", help="image names (default: all)")
    args = parser.parse_args(argv)
    for image in [image_named(n) for n in args.images] or images():
        compile_lock(image)
        print(f"wrote {image.lock.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
