"""Fixtures of the cluster harness: the deployed release, and `serve_url` pointed at a gateway
pod's Serve proxy, so that the contract tests collected here (tests/cluster/test_contract.py)
run unchanged against the deployed shape."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from serve.local import free_port, wait_healthy
from tests.cluster import deployment
from tests.cluster.deployment import Deployed
from tests.conftest import WENET_MODEL, metric_total

RAY_EXPORT_INTERVAL_S = 10.0
"""How often Ray exports a worker's `ray.util.metrics` to its node's metrics port (Ray's
`metrics_report_interval_ms` default, which the chart keeps)."""


@pytest.fixture(scope="package")
def deployed(models_dir: Path, request: pytest.FixtureRequest) -> Iterator[Deployed]:
    """The release, started once for the tests of this package. Its pods' logs and Ray session
    dirs (under /tmp/thc-*) are kept when a test failed, removed otherwise."""
    started = time.monotonic()
    release = deployment.start(models_dir, free_port())
    try:
        for node in release.gateways:
            wait_healthy(node.serve_url, timeout_s=300)
        timings = release.cluster.timings
        timings["ready_s"] = time.monotonic() - started
        print(
            "\ncluster harness: "
            + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
            + "\n"
            + release.cluster.format_placement(release.cluster.placement(release.app)),
            flush=True,
        )
        yield release
    finally:
        release.cluster.stop()
        if request.session.testsfailed == 0:
            shutil.rmtree(release.cluster.root, ignore_errors=True)


@pytest.fixture(scope="package")
def serve_url(deployed: Deployed) -> str:
    """Overrides the local run's `serve_url` (tests/conftest.py) for the tests collected here."""
    return deployed.url


@pytest.fixture(scope="package")
def wenet_stream_steps(deployed: Deployed) -> Callable[[], float]:
    """Streaming steps the WeNet replicas served so far, summed over every WeNet pod's Ray
    metrics port (the chart's PodMonitor path: `ray_theo_engine_stream_steps_total`). The
    gateway's `/metrics` would show one replica's count, and a session's sticky replica may be
    the other one. A reading is returned once it held still across one export interval."""
    import httpx

    def read() -> float:
        return sum(
            metric_total(
                httpx.get(node.metrics_url, timeout=30).text,
                "ray_theo_engine_stream_steps_total",
                WENET_MODEL,
            )
            for node in deployed.cluster.group("wenet")
        )

    def settled() -> float:
        value = read()
        while True:
            time.sleep(RAY_EXPORT_INTERVAL_S + 1)
            value, before = read(), value
            if value == before:
                return value

    return settled
