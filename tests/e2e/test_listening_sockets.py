"""The local run listens on the host it was given and nowhere else: every listening socket of
the process tree it started (GCS, raylet, agents, workers, Serve's proxy and each replica's
gRPC server) is on loopback."""

from __future__ import annotations

import ipaddress

import psutil
import pytest

from serve.local_bind import bind_address, rebind

pytestmark = pytest.mark.e2e


def listening_sockets() -> list[tuple[str, str, int]]:
    """(process name, address, port) of every TCP listener in this process's tree."""
    found = []
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            name = process.cmdline()[0] if process.cmdline() else process.name()
            connections = process.net_connections(kind="inet")
        except psutil.Error:
            continue
        for connection in connections:
            if connection.status == psutil.CONN_LISTEN:
                found.append((name, connection.laddr.ip, connection.laddr.port))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_every_listener_of_the_local_run_is_on_loopback(serve_url: str) -> None:
    sockets = listening_sockets()
    replicas = [s for s in sockets if s[0].startswith("ray::ServeReplica:")]
    assert len({name for name, _, _ in replicas}) >= 2, sockets  # gateway + engines were seen
    assert any(s[0].startswith("ray::ProxyActor") for s in sockets), sockets
    assert any("gcs_server" in s[0] or "raylet" in s[0] for s in sockets), sockets
    wide = [s for s in sockets if not is_loopback(s[1])]
    assert not wide, f"listening beyond loopback: {wide}"


def test_bind_addresses() -> None:
    assert bind_address("127.0.0.1") == "127.0.0.1"
    assert bind_address("localhost") == "127.0.0.1"
    assert bind_address("::1") == "::1"
    assert bind_address("0.0.0.0") is None and bind_address("::") is None
    assert rebind("[::]:0", "127.0.0.1") == "127.0.0.1:0"
    assert rebind("[::]:0", "::1") == "[::1]:0"
    assert rebind("10.0.0.1:9000", "127.0.0.1") == "10.0.0.1:9000"
