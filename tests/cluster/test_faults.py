"""Pods dying under traffic: an engine pod and a gateway pod, each killed the way a node loss
kills them (the pod's whole Ray process tree, SIGKILL), then replaced as Kubernetes would.
Each test prints what clients saw and how long recovery took (docs/DEPLOYMENT.md)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from cli.realtime_client import RealtimeClient
from tests.cluster.deployment import Deployed
from tests.cluster.harness import Node
from tests.cluster.traffic import (
    ONE_UTTERANCE,
    RestLoad,
    realtime_session,
    speech,
    wait_until_served,
)
from tests.conftest import WENET_MODEL
from tests.realtime.helpers import assert_partials_prefix_finals, finals, types

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
SESSIONS = 3


def running_replicas(deployed: Deployed, deployment: str) -> int:
    app = deployed.cluster.application(deployed.app)
    replicas = app["deployments"][deployment]["replicas"]
    return sum(r["state"] == "RUNNING" for r in replicas)


async def one_session(client: RealtimeClient, audio: np.ndarray, kill: asyncio.Event) -> None:
    """Stream the first 2 s, let the node die, stream the rest, close normally."""
    await client.wait_for("session.created")
    await client.send_json(ONE_UTTERANCE)
    await client.stream(audio[: 16_000 * 2], speed=1.0)
    await kill.wait()
    await client.stream(audio[16_000 * 2 :], speed=1.0)
    await client.wait_for("transcript.final", timeout=120)
    await client.close_session(timeout=120)


def assert_session_intact(client: RealtimeClient) -> None:
    events = client.record.events
    ids = [e["segment_id"] for e in finals(events)]
    assert client.record.close_code == 1000, (client.record.close_code, types(events))
    assert ids == list(range(len(ids))) and ids, "no duplicated or skipped segment ids"
    assert "error" not in types(events)
    words = " ".join(e["text"] for e in finals(events)).split()
    assert words[:5] == ["and", "so", "my", "fellow", "americans"], words
    assert_partials_prefix_finals(events)


async def test_engine_pod_killed_under_rest_and_realtime_traffic(deployed: Deployed) -> None:
    """One of the two WeNet pods dies while REST requests (WeNet and Whisper) and realtime
    sessions (WeNet, natively streaming, sticky to a replica) run. Sessions whose stream was on
    the dead replica replay their ring buffer on the surviving one; every session keeps
    contiguous segment ids; a REST request that fails gets a retryable 503; new requests succeed
    on the surviving pod; a replacement pod gets the lost replica back."""
    cluster = deployed.cluster
    victim, survivor = cluster.group("wenet")[:2]
    deployment = "wenet-wenet-playback"
    load = RestLoad([deployed.url], [WENET_MODEL, "whisper-tiny.en"], concurrency=2)
    kill = asyncio.Event()
    audio = speech(5.0)
    async with load.running():
        clients = [realtime_session(deployed.url, WENET_MODEL) for _ in range(SESSIONS)]
        for client in clients:
            await client.__aenter__()
        try:
            sessions = [asyncio.create_task(one_session(c, audio, kill)) for c in clients]
            await asyncio.sleep(2.5)
            killed_at = time.monotonic()
            await asyncio.to_thread(victim.kill)
            kill.set()
            await asyncio.gather(*sessions)
        finally:
            for client in clients:
                await client.__aexit__(None, None, None)
        served_s = await wait_until_served(deployed.url, WENET_MODEL)
    for client in clients:
        assert_session_intact(client)
    failed = load.failures()
    assert all(o.retryable for o in failed), [(o.status, o.detail) for o in failed]
    assert load.after(killed_at), "traffic ran across the kill"
    replacement = await asyncio.to_thread(cluster.replace, victim)
    recovered_s = await asyncio.to_thread(
        cluster.wait_application,
        deployed.app,
        300,
        lambda app: (
            sum(r["state"] == "RUNNING" for r in app["deployments"][deployment]["replicas"]) == 2
        ),
    )
    placement = cluster.placement(deployed.app)
    assert deployment in placement[replacement.name]["replicas"], placement
    assert deployment in placement[survivor.name]["replicas"], placement
    print(
        f"\nengine pod {victim.name} killed: {len(load.outcomes)} REST requests, "
        f"{len(failed)} failed (all 503 + Retry-After), {SESSIONS} realtime sessions intact; "
        f"served again {served_s:.1f} s after the kill's sessions ended; replacement pod "
        f"{replacement.name} running the replica {recovered_s:.1f} s after it registered "
        f"({time.monotonic() - killed_at:.1f} s after the kill)",
        flush=True,
    )


def gateway_pods(deployed: Deployed) -> tuple[Node, Node]:
    """A gateway pod that hosts a Gateway replica (its proxy carries traffic), and another
    gateway pod, one with a Gateway replica if there is one."""
    placement = deployed.cluster.placement(deployed.app)
    pods = sorted(
        deployed.cluster.group("gateway"),
        key=lambda n: "Gateway" not in placement[n.name]["replicas"],
    )
    assert len(pods) >= 2 and "Gateway" in placement[pods[0].name]["replicas"], placement
    return pods[0], pods[1]


async def test_gateway_pod_killed(deployed: Deployed) -> None:
    """A gateway pod dies under a realtime session and REST traffic through its proxy: the
    session's socket closes at once (no hang; the client reconnects and starts a new session),
    REST requests in flight fail at the connection, and the other gateway pod serves new
    requests (once Serve has a Gateway replica there, if it had none); a replacement pod
    restores the Gateway replicas, and every gateway pod with a proxy serves. Timings go to
    docs/DEPLOYMENT.md."""
    cluster = deployed.cluster
    victim, other = gateway_pods(deployed)
    load = RestLoad([victim.serve_url], ["whisper-tiny.en", WENET_MODEL], concurrency=2)
    timings: dict[str, Any] = {}
    async with load.running():
        async with realtime_session(victim.serve_url, WENET_MODEL) as client:
            await client.wait_for("session.created")
            await client.send_json(ONE_UTTERANCE)
            await client.stream(speech(5.0)[: 16_000 * 2], speed=1.0)
            killed_at = time.monotonic()
            await asyncio.to_thread(victim.kill)
            async with client._arrived:  # the reader notices the dead connection
                await asyncio.wait_for(client._arrived.wait_for(lambda: client.closed), 60)
            timings["socket_closed_s"] = time.monotonic() - killed_at
        timings["served_by_other_pod_s"] = await wait_until_served(
            other.serve_url, WENET_MODEL, timeout_s=120
        )
    after = load.after(killed_at)
    assert client.record.close_code != 1000, "the session could not end normally"
    assert "session.closed" not in types(client.record.events)
    assert timings["socket_closed_s"] < 30
    assert all(o.status is None or o.status >= 500 for o in load.failures())
    timings["rest_failed_at_kill"] = len([o for o in after if not o.ok])
    await asyncio.to_thread(cluster.replace, victim)

    def restored(app: dict[str, Any]) -> bool:
        """Two Gateway replicas running on live pods (until Ray declares the killed pod dead,
        Serve may still list its replica as running)."""
        alive = {n.node_id for n in cluster.nodes if n.alive}
        replicas = app["deployments"]["Gateway"]["replicas"]
        return sum(r["state"] == "RUNNING" and r.get("node_id") in alive for r in replicas) == 2

    timings["gateway_replicas_restored_s"] = await asyncio.to_thread(
        cluster.wait_application, deployed.app, 300, restored
    )
    placement = cluster.placement(deployed.app)
    serving = [n for n in cluster.group("gateway") if placement[n.name]["proxy"] == "HEALTHY"]
    assert serving, placement
    for node in serving:  # the pods in the serve Service: those with a healthy proxy
        await wait_until_served(node.serve_url, "whisper-tiny.en", timeout_s=180)
    timings["pods_serving"] = ", ".join(n.name for n in serving)
    assert all(
        placement[n]["group"] == "gateway"
        for n, row in placement.items()
        if "Gateway" in row["replicas"]
    ), placement
    print(
        f"\ngateway pod {victim.name} killed: close code {client.record.close_code}, "
        + ", ".join(
            f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in timings.items()
        ),
        flush=True,
    )
