"""The embedded local run: a private local Ray, Serve on loopback, the same app as a cluster.

Every listening socket of the run is on the given host (`serve.local_bind`), and Serve's proxy
bounds request bodies (`serve.proxy`)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engines.manifest import ManifestError
from engines.registry import ModelRegistry
from engines.spec import registered_engines
from serve.builder import GATEWAY_RESOURCE, app_args, selected_manifests
from serve.local_bind import HOST_ENV, SETUP_HOOK, bind_address
from serve.proxy import CALLBACK as PROXY_CALLBACK
from serve.proxy import CALLBACK_ENV as PROXY_CALLBACK_ENV
from serve.settings import TheoSettings

logger = logging.getLogger(__name__)

RAY_ENV = {
    # Bind to loopback, not the external interface; no auth tokens; no usage reporting.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    # Ray starts workers at nice 15; a local service should not yield to every other process.
    "RAY_worker_niceness": "0",
}
LOCAL_ENGINE_SLOTS = 16
"""How many engine replicas of each kind, and Gateway replicas, the local node offers (Ray
custom resources)."""


def prepare_environment() -> None:
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)


def ray_process_environment(settings: TheoSettings) -> dict[str, str]:
    """What every process of the local Ray inherits: the proxy's body bound (its callback and
    limit) and the host its servers bind to."""
    return {
        PROXY_CALLBACK_ENV: PROXY_CALLBACK,
        "THEO_MAX_UPLOAD_MB": repr(settings.max_upload_mb),
        HOST_ENV: settings.host,
    }


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`os.environ` with `values` while Ray's processes are spawned, restored after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_local_ray(num_cpus: int | None = None, settings: TheoSettings | None = None) -> str:
    """Start a private Ray node (never `ray stop`: that kills every Ray on the machine) whose
    servers all listen on `settings.host` (see `serve.local_bind`)."""
    prepare_environment()
    import ray
    from ray._private import ray_constants

    # Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when it is first imported; a process
    # that imported ray before this call (a test session, an embedding program) would
    # otherwise put the node, and so every server of it, on the external interface.
    ray_constants.ENABLE_RAY_CLUSTER = False

    settings = settings or TheoSettings()
    temp_dir = tempfile.mkdtemp(prefix="theo-ray-")
    resources = {spec.key: float(LOCAL_ENGINE_SLOTS) for spec in registered_engines().values()}
    resources[GATEWAY_RESOURCE] = float(LOCAL_ENGINE_SLOTS)
    with environment(ray_process_environment(settings)):
        ray.init(
            address="local",
            num_cpus=num_cpus or max(8, os.cpu_count() or 1),
            resources=resources,
            include_dashboard=False,
            _temp_dir=temp_dir,
            _node_ip_address=bind_address(settings.host),
            runtime_env={"worker_process_setup_hook": SETUP_HOOK},
            log_to_driver=False,
            configure_logging=True,
            logging_level=logging.WARNING,
        )
    return temp_dir


def machine_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def local_settings(settings: TheoSettings) -> TheoSettings:
    """On the local run an engine left at `cpu_threads: 0` uses every CPU of the machine (in
    a cluster, 0 means the CPUs Ray allots the replica: its `num_cpus`)."""
    changes: dict[str, Any] = {}
    for spec in registered_engines().values():
        engine = settings.engine(spec)
        if engine.cpu_threads == 0:
            changes[spec.key] = engine.model_copy(update={"cpu_threads": machine_cpus()})
    return settings.model_copy(update=changes)


def load_models(settings: TheoSettings) -> tuple[list[Any], list[ManifestError]]:
    registry = ModelRegistry.scan(settings.models_dir)
    return selected_manifests(settings, registry.models), registry.errors


def deploy(settings: TheoSettings, *, blocking: bool = False) -> None:
    """Start Serve's HTTP proxy on settings.host:port and deploy the Theo application."""
    from ray import serve

    from serve.app import build_app

    manifests, errors = load_models(settings)
    for error in errors:
        logger.warning("invalid manifest skipped: %s", error)
    if not manifests:
        raise RuntimeError(f"no models found in {settings.models_dir}")
    serve.start(http_options={"host": settings.host, "port": settings.port})
    app = build_app(app_args(local_settings(settings), manifests, include_secrets=True))
    serve.run(app, name=settings.app_name, route_prefix="/", blocking=blocking)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (tests, benchmarks and demos start servers on it)."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    url: str, timeout_s: float = 180.0, *, process: subprocess.Popen[str] | None = None
) -> None:
    """Poll `url/health` until it answers 200 (every model loaded). Raises `RuntimeError` after
    `timeout_s`, or as soon as `process` (a server being started) exits, with its output."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"the server exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"Theo at {url} did not become healthy in {timeout_s:.0f} s")


def shutdown() -> None:
    import ray
    from ray import serve

    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()


def models_dir_ready(models_dir: Path) -> bool:
    return any(models_dir.glob("*/theo.yaml"))
