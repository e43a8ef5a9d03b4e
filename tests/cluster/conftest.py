"""Fixtures of the cluster harness: the deployed release, and `serve_url` pointed at a gateway
pod's Serve proxy, so that the contract tests collected here (tests/cluster/test_contract.py)
run unchanged against the deployed shape."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve.local import free_port, wait_healthy
from tests.cluster import deployment
from tests.cluster.deployment import Deployed


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
