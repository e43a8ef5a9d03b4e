"""`python -m serve.drain [--deadline-s N]`: drain this pod's Ray node before the pod stops.

The chart runs it as the `preStop` hook of every Ray worker pod. It asks the GCS to drain the
node (Ray's `DrainNode`, reason preemption, with the deadline: the same call as Ray's
`ray drain-node` and the autoscaler's), then waits until Serve has moved what the node hosted
or the deadline passes:

- Serve's controller sees the draining node, starts a replacement for each replica on it on
  another node, and once the replacement runs, stops the old replica gracefully (it finishes
  its ongoing requests, open WebSocket sessions included, for up to the deployment's
  `graceful_shutdown_timeout_s`);
- the node's Serve proxy turns to draining (its health check answers 503, so the serve
  Service takes the pod out) and stops once its connections are done (after at least
  `RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S`, 30 s).

Exit status: 0 when the node hosts no Serve replica and no Serve proxy any more; 1 when the
deadline passed first (the pod is stopped anyway; whatever still runs on it is cut); 2 when the
node or its GCS could not be found or the drain was refused.

The node is the one whose raylet runs in this container (a pod runs one Ray node); where several
run on one machine (the cluster harness), `--node-id` names it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVE_ACTOR_PREFIXES = ("SERVE_REPLICA::", "SERVE_PROXY_ACTOR")
"""Names of the Serve actors that a drain moves away: replicas and the node's proxy (the
controller lives on the head, which is never drained)."""
DEFAULT_DEADLINE_S = 300.0
REASON = "the pod is stopping (preStop: python -m serve.drain)"


class DrainError(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalNode:
    node_id: str
    gcs_address: str
    raylet_pid: int


def _flag(cmdline: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(cmdline):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(cmdline):
            return cmdline[i + 1]
    return None


def local_nodes(proc: Path = Path("/proc")) -> list[LocalNode]:
    """The Ray nodes whose raylet runs on this machine (in this container): from the command
    lines of the processes (Linux `/proc`), since a raylet carries its node id and its GCS."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not cmdline or Path(cmdline[0]).name != "raylet":
            continue
        node_id = _flag(cmdline, "--node_id")
        gcs = _flag(cmdline, "--gcs-address") or _flag(cmdline, "--gcs_address")
        if node_id and gcs:
            found.append(LocalNode(node_id, gcs, int(entry.name)))
    return found


def choose_node(nodes: Sequence[LocalNode], node_id: str | None) -> LocalNode:
    if node_id is not None:
        for node in nodes:
            if node.node_id == node_id:
                return node
        raise DrainError(f"no raylet of node {node_id} runs here")
    if not nodes:
        raise DrainError("no Ray node runs here")
    if len(nodes) > 1:
        listed = ", ".join(n.node_id for n in nodes)
        raise DrainError(f"{len(nodes)} Ray nodes run here ({listed}): pass --node-id")
    return nodes[0]


def _ray_internals() -> tuple[Any, Any, Any]:
    """Ray's GCS client, drain reasons and global state: the same calls as `ray drain-node`
    and Ray's own tools make (not typed, not public API: checked against Ray 2.60)."""
    return (
        importlib.import_module("ray._raylet"),
        importlib.import_module("ray.core.generated.autoscaler_pb2"),
        importlib.import_module("ray._private.state"),
    )


def request_drain(node: LocalNode, deadline_s: float) -> None:
    """Ask the GCS to drain the node, telling it the node goes away in `deadline_s`."""
    raylet, autoscaler_pb2, _ = _ray_internals()
    client = raylet.GcsClient(address=node.gcs_address)
    deadline_ms = int(time.time() * 1000 + deadline_s * 1000)
    accepted, message = client.drain_node(
        node.node_id,
        autoscaler_pb2.DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION"),
        REASON,
        deadline_ms,
    )
    if not accepted:
        raise DrainError(f"the GCS refused to drain node {node.node_id}: {message}")


def serve_actors_on(node: LocalNode) -> list[str]:
    """Names of the live Serve replicas and proxy on the node, from the GCS's actor table."""
    raylet, _, state_module = _ray_internals()
    state = state_module.GlobalState()
    state._initialize_global_state(
        raylet.GcsClientOptions.create(
            node.gcs_address, None, allow_cluster_id_nil=True, fetch_cluster_id_if_nil=False
        )
    )
    table: dict[str, Any] = state.actor_table(None, actor_state_name="ALIVE")
    names = []
    for info in table.values():
        name = str(info.get("Name") or "")
        if info["Address"]["NodeID"] == node.node_id and name.startswith(SERVE_ACTOR_PREFIXES):
            names.append(name)
    return sorted(names)


def drain(node: LocalNode, deadline_s: float, poll_s: float = 1.0) -> list[str]:
    """Drain the node; the Serve actors still on it when the deadline passed (empty: all moved)."""
    started = time.monotonic()
    request_drain(node, deadline_s)
    remaining = serve_actors_on(node)
    while remaining and time.monotonic() - started < deadline_s:
        time.sleep(poll_s)
        remaining = serve_actors_on(node)
    return remaining


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serve.drain", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=DEFAULT_DEADLINE_S,
        help="seconds until the pod is killed (keep it below terminationGracePeriodSeconds)",
    )
    parser.add_argument("--node-id", help="the node to drain (default: the one running here)")
    parser.add_argument("--poll-s", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        node = choose_node(local_nodes(), args.node_id)
        print(f"draining Ray node {node.node_id} (deadline {args.deadline_s:.0f} s)", flush=True)
        remaining = drain(node, args.deadline_s, args.poll_s)
    except DrainError as exc:
        print(f"serve.drain: {exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    if remaining:
        print(
            f"deadline passed after {elapsed:.0f} s; still on the node: {', '.join(remaining)}",
            file=sys.stderr,
        )
        return 1
    print(f"drained in {elapsed:.1f} s: no Serve replica or proxy left on the node", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
