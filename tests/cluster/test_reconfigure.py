"""Configuration changes submitted under traffic, the way an operator submits them: new chart
values, `helm upgrade`, KubeRay PUTs the new serveConfigV2 (`Deployed.apply`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.deployment import Deployed, with_model, with_settings
from tests.cluster.traffic import HEADERS, RestLoad, wait_until_served
from tests.conftest import WENET_MODEL

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

WHISPER = "whisper-whisper-tiny_en"
NEW_MODEL = "whisper-base"


def replicas(deployed: Deployed) -> dict[str, set[str]]:
    deployments = deployed.cluster.application(deployed.app)["deployments"]
    return {
        name: {r["replica_id"] for r in info["replicas"] if r["state"] == "RUNNING"}
        for name, info in deployments.items()
    }


def user_config(app: dict[str, Any]) -> dict[str, Any]:
    return dict(app["deployments"][WHISPER]["deployment_config"].get("user_config") or {})


async def test_user_config_change_under_traffic_is_applied_in_place(deployed: Deployed) -> None:
    """`max_batch_size` is live-tunable: a new value reaches the running Whisper replicas
    through `reconfigure`; no replica restarts and no request fails."""
    before = replicas(deployed)
    load = RestLoad([deployed.url], ["whisper-tiny.en", WENET_MODEL])
    async with load.running():
        await asyncio.sleep(2)
        await asyncio.to_thread(
            deployed.apply, with_settings(deployed.values, "whisper", max_batch_size=4)
        )
        await asyncio.to_thread(
            deployed.cluster.wait_application,
            deployed.app,
            300,
            lambda app: user_config(app).get("max_batch_size") == 4,
        )
        await asyncio.sleep(3)
    assert not load.failures(), load.failures()
    assert len(load.outcomes) >= 4
    assert replicas(deployed) == before, "a user_config change restarts no replica"


async def test_new_model_under_traffic(deployed: Deployed, models_dir: Path) -> None:
    """A model added to the values is deployed while the others keep serving."""
    load = RestLoad([deployed.url], ["whisper-tiny.en", WENET_MODEL])
    async with load.running():
        await asyncio.sleep(2)
        await asyncio.to_thread(deployed.apply, with_model(deployed.values, models_dir / NEW_MODEL))
        await asyncio.to_thread(
            deployed.cluster.wait_application,
            deployed.app,
            600,
            lambda app: f"whisper-{NEW_MODEL}" in app["deployments"],
        )
        await wait_until_served(deployed.url, NEW_MODEL)
    assert not load.failures(), load.failures()
    listed = httpx.get(f"{deployed.url}/v1/models", headers=HEADERS, timeout=30).json()
    assert NEW_MODEL in {m["id"] for m in listed["data"]}
    placement = deployed.cluster.placement(deployed.app)
    hosts = [n for n, row in placement.items() if f"whisper-{NEW_MODEL}" in row["replicas"]]
    assert hosts and all(placement[n]["group"] == "whisper" for n in hosts), placement
