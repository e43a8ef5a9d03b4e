"""The chart's preStop hook, `python -m serve.drain`, on a gateway pod that holds an open
realtime session: what the session sees, and where Serve moves the node's work."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.cluster.deployment import Deployed
from tests.cluster.test_faults import gateway_pods
from tests.cluster.traffic import (
    ONE_UTTERANCE,
    realtime_session,
    speech,
    wait_until_served,
)
from tests.conftest import WENET_MODEL
from tests.realtime.helpers import assert_partials_prefix_finals, finals, types

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


async def proxy_health(url: str, until: int, timeout_s: float = 60) -> httpx.Response:
    """The proxy's health check, polled until it answers `until` (Serve's controller notices
    a draining node within a few control-loop periods; on a loaded machine, seconds)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            reply = await client.get(f"{url}/-/healthz")
            if reply.status_code == until or time.monotonic() > deadline:
                return reply
            await asyncio.sleep(0.5)


def test_drain_needs_a_node_id_where_several_nodes_run(deployed: Deployed) -> None:
    """In a pod one raylet runs, and serve.drain drains its node; on this machine several do,
    and it refuses to guess."""
    node = deployed.gateways[0]
    done = deployed.cluster.run_in(node, "-m", "serve.drain", "--deadline-s", "5")
    output, _ = done.communicate(timeout=120)
    assert done.returncode == 2, output
    assert "pass --node-id" in output


async def test_drained_gateway_pod_keeps_its_open_session(deployed: Deployed) -> None:
    """Drain the gateway pod whose proxy carries an open realtime session with the preStop
    hook the chart renders for it:
    the session goes on undisturbed to its last final and a normal close; the pod's proxy
    answers its health check with 503 (the serve Service drops the pod) while other gateway
    pods take new requests; the drain returns once the pod hosts no Serve replica and no
    proxy. Then the pod is replaced, as Kubernetes would."""
    cluster = deployed.cluster
    node, other = gateway_pods(deployed)
    audio = speech(5.0)
    async with realtime_session(node.serve_url, WENET_MODEL) as client:
        await client.wait_for("session.created")
        await client.send_json(ONE_UTTERANCE)
        await client.stream(audio[: 16_000 * 2], speed=1.0)
        started = time.monotonic()
        drain = cluster.pre_stop(node)  # the chart's hook: python -m serve.drain --deadline-s N
        await client.stream(audio[16_000 * 2 :], speed=1.0)
        await client.wait_for("transcript.final", timeout=90)
        health = await proxy_health(node.serve_url, until=503)
        served_elsewhere = await wait_until_served(other.serve_url, WENET_MODEL, timeout_s=60)
        await client.close_session(timeout=60)
        session_closed = time.monotonic() - started
    deadline_s = float(node.shape.pre_stop[node.shape.pre_stop.index("--deadline-s") + 1])
    output, _ = await asyncio.to_thread(drain.communicate, timeout=deadline_s + 60)
    drained = time.monotonic() - started
    events = client.record.events
    ids = [e["segment_id"] for e in finals(events)]
    assert client.record.close_code == 1000, (client.record.close_code, types(events))
    assert "error" not in types(events)
    assert ids == list(range(len(ids))) and ids
    assert_partials_prefix_finals(events)
    assert health.status_code == 503, health.text
    assert drain.returncode == 0, output
    placement = cluster.placement(deployed.app)
    assert placement[node.name]["replicas"] == [] and placement[node.name]["proxy"] is None
    gateways = [n for n, row in placement.items() if "Gateway" in row["replicas"]]
    assert gateways and all(placement[n]["group"] == "gateway" for n in gateways)
    print(
        f"\ndrain of {node.name}: session closed normally at {session_closed:.1f} s, drain "
        f"returned at {drained:.1f} s; other gateway pod served in {served_elsewhere:.1f} s\n"
        + output,
        flush=True,
    )
    replacement = await asyncio.to_thread(cluster.replace, node)
    await asyncio.to_thread(
        cluster.wait_application, deployed.app, 300, lambda app: _gateways_running(app) == 2
    )
    assert replacement.alive


def _gateways_running(app: dict[str, Any]) -> int:
    gateway = app["deployments"]["Gateway"]
    return sum(r["state"] == "RUNNING" for r in gateway["replicas"])
