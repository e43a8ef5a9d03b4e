"""Every listening socket of the local run on the host it was given (`--host`, `THEO_HOST`).

Ray binds its own servers (GCS, raylet, object manager, workers, agents) to the node IP, which
the local run sets to the host. One listener has no setting: each Serve replica starts an
inter-deployment gRPC server on `[::]:0`, every interface. `bind_replica_servers` runs in every
Ray worker of the local run (Ray's `worker_process_setup_hook`) and has those servers bind to
the host instead. A wildcard host (`0.0.0.0`, `::`) keeps Ray's behaviour.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

HOST_ENV = "THEO_HOST"
SETUP_HOOK = "serve.local_bind.bind_replica_servers"
ANY_INTERFACE = "[::]"


def bind_address(host: str) -> str | None:
    """The IP the local run's servers bind to for `host`; None for a wildcard (all
    interfaces)."""
    host = host.strip().strip("[]")
    if host in ("", "0.0.0.0", "::"):
        return None
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return socket.gethostbyname(host)


def grpc_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def rebind(address: str, host: str) -> str:
    """`[::]:0` -> `127.0.0.1:0` (any other address is left as it is)."""
    if address.startswith(ANY_INTERFACE + ":"):
        return grpc_host(host) + address[len(ANY_INTERFACE) :]
    return address


def bind_replica_servers() -> None:
    """Ray worker setup hook: Serve replicas' gRPC servers bind to `THEO_HOST`."""
    host = bind_address(os.environ.get(HOST_ENV, ""))
    if host is None:
        return
    try:
        from ray.serve._private import replica
    except ImportError:  # pragma: no cover - ray[serve] is a core dependency
        return
    original: Callable[[Any, str], int] | None = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "_theo_bound", False):
        logger.warning("Serve replicas' gRPC servers cannot be bound to %s: unknown Ray", host)
        return

    def add_port(server: Any, address: str) -> int:
        return original(server, rebind(address, host))

    add_port._theo_bound = True  # type: ignore[attr-defined]
    setattr(replica, "add_port_to_grpc_server", add_port)  # noqa: B010
