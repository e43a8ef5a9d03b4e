"""One virtual environment per image, built from that image's lock file (what its Dockerfile
installs) plus this checkout's code, and cached between runs.

The cache key is the lock, pyproject.toml, the interpreter and the checkout's path: a change to
any of them builds a new environment (the code itself is an editable install, so code changes
need no rebuild). uv installs the locked packages (as in the Dockerfiles); on a CPU-only machine
the locked torch (PyPI's CUDA build) is replaced by the CPU build of the same version
(`pip install torch==X`, which takes the staged CPU wheel) and torch's CUDA libraries are left
out (`serve.deploy.images.cpu_requirements`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from serve.deploy.helmtool import REPO_ROOT
from serve.deploy.images import PYPROJECT, Image, cpu_requirements

CACHE_DIR = Path(os.environ.get("THEO_HARNESS_CACHE", Path.home() / ".cache" / "theo-harness"))
BASE_PYTHON = Path(getattr(sys, "_base_executable", sys.executable))
"""Every node runs this interpreter (Ray refuses nodes of another Python version)."""
RECIPE = "2"
"""Bump when the way an environment is built changes."""


def _key(image: Image) -> str:
    digest = hashlib.sha256()
    for part in (
        RECIPE,
        str(REPO_ROOT),
        str(BASE_PYTHON),
        sys.version,
        image.lock.read_text("utf-8"),
        PYPROJECT.read_text("utf-8"),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _run(*command: str | Path, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(map(str, command))}\n")
        out.flush()
        done = subprocess.run(
            [str(c) for c in command], stdout=out, stderr=subprocess.STDOUT, timeout=1800
        )
    if done.returncode != 0:
        tail = "".join(log.read_text("utf-8").splitlines(keepends=True)[-40:])
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{tail}")


def _uv() -> list[str]:
    return [sys.executable, "-m", "uv"]


def _build(image: Image, target: Path, log: Path) -> None:
    python = target / "bin" / "python"
    _run(*_uv(), "venv", "--quiet", "--python", BASE_PYTHON, target, log=log)
    cpu_builds, lock = cpu_requirements(image)
    if cpu_builds:
        # pip, not uv: only pip looks at the staged CPU wheel (PIP_FIND_LINKS); torch's own
        # dependencies come from the lock below.
        _run(*_uv(), "pip", "install", "--quiet", "--python", python, "pip", log=log)
        _run(python, "-m", "pip", "install", "--quiet", "--no-deps", *cpu_builds, log=log)
    requirements = target / "lock.txt"
    requirements.write_text("\n".join(lock) + "\n", encoding="utf-8")
    _run(
        *_uv(), "pip", "install", "--quiet", "--python", python,
        "--require-hashes", "--no-deps", "-r", requirements,
        log=log,
    )  # fmt: skip
    _run(*_uv(), "pip", "install", "--quiet", "--python", python, "--no-deps", "-e", REPO_ROOT,
         log=log)  # fmt: skip
    _run(*_uv(), "pip", "check", "--python", python, log=log)


def environment(image: Image) -> Path:
    """The environment of `image` (its `bin/` holds `python` and `ray`), built if needed."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    target = CACHE_DIR / f"{image.name}-{_key(image)}"
    with (CACHE_DIR / f".{image.name}.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # two test runs never build one environment twice
        if (target / ".complete").exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        log = CACHE_DIR / f"{target.name}.log"
        log.write_text("", encoding="utf-8")
        started = time.monotonic()
        _build(image, target, log)
        (target / ".complete").write_text(f"{time.monotonic() - started:.1f}\n", "utf-8")
        for stale in CACHE_DIR.glob(f"{image.name}-*"):
            if stale != target and stale.is_dir() and _same_checkout(stale):
                shutil.rmtree(stale, ignore_errors=True)
        return target


def _same_checkout(env: Path) -> bool:
    """Whether an older environment was built for this checkout (so it can go)."""
    marker = next(env.glob("lib/python*/site-packages/__editable__.theo-*.pth"), None)
    if marker is None:
        marker = next(env.glob("lib/python*/site-packages/_theo*.pth"), None)
    return marker is not None and str(REPO_ROOT) in marker.read_text("utf-8", errors="replace")
