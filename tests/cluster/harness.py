"""The deployed shape on one machine: a real multi-node Ray cluster on loopback, shaped by the
rendered chart, with the chart's `serveConfigV2` deployed the way KubeRay deploys it.

- Every Ray pod of the rendered RayService (the head group, then each worker group times its
  `replicas`) becomes one `ray start --block` process, run from the environment of that pod's
  image (`tests.cluster.environments`) with the group's `rayStartParams` (`num-cpus`,
  `num-gpus`, `resources`, ...) and the plain environment variables of its Ray container. A
  replica that needs a library its node's image lacks fails there as it would in the cluster.
- What a pod would have for itself gets a free port or a directory of its own: Ray's ports, a
  temp dir, the Serve proxy's HTTP port (`RAY_SERVE_WORKER_PROXY_HTTP_PORT` on worker nodes;
  the head's proxy binds the chart's `settings.port`).
- `deploy` PUTs `serveConfigV2` (YAML → JSON) to the head's Serve REST API
  (`/api/serve/applications/`), as KubeRay's operator does; the harness reads the state back
  from the same dashboard (Serve details, Ray's state API), never as a Ray driver.
- Nodes stop by PID: a killed node is its `ray start` process and every process below it
  (raylet, agents, workers), killed at once with SIGKILL. Nothing here runs `ray stop`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from serve.deploy.images import GATEWAY_IMAGE, Image, image_named, images
from serve.local import free_port
from tests.cluster.environments import environment

RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}
HEAD = "head"
OBJECT_STORE_BYTES = 256 * 1024 * 1024
APP_RUNNING = "RUNNING"


@dataclass(frozen=True)
class PodShape:
    """One Ray pod of the rendered RayService."""

    group: str
    """`head`, `gateway` or an engine group (the engine's key)."""
    image: Image
    params: dict[str, str]
    """`rayStartParams`, as KubeRay passes them to `ray start` (`--key=value`)."""
    env: dict[str, str]
    """The Ray container's environment variables that have a plain value."""
    replicas: int
    pre_stop: tuple[str, ...] = ()
    """The Ray container's `preStop` exec command (the chart's drain), if any."""


def _image_of(container: Mapping[str, Any], values: Mapping[str, Any]) -> Image:
    """The image a Ray container runs, by its repository in the chart values."""
    repository = str(container["image"]).split("@", 1)[0].rsplit(":", 1)[0]
    if repository == values["gatewayImage"]["repository"]:
        return image_named(GATEWAY_IMAGE)
    for key, group in (values.get("engines") or {}).items():
        if (group.get("image") or {}).get("repository") == repository:
            return image_named(key)
    raise ValueError(f"image {container['image']} belongs to no image of {images()}")


def pod_shapes(rayservice: Mapping[str, Any], values: Mapping[str, Any]) -> list[PodShape]:
    """The head and the worker groups of a rendered RayService."""
    cluster = rayservice["spec"]["rayClusterConfig"]
    groups = [(HEAD, cluster["headGroupSpec"], 1)]
    groups += [(g["groupName"], g, int(g["replicas"])) for g in cluster["workerGroupSpecs"]]
    shapes = []
    for name, group, replicas in groups:
        container = group["template"]["spec"]["containers"][0]
        env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
        params = {str(k): str(v) for k, v in group["rayStartParams"].items()}
        hook = (container.get("lifecycle") or {}).get("preStop", {}).get("exec", {})
        image = _image_of(container, values)
        pre_stop = tuple(str(word) for word in hook.get("command", []))
        shapes.append(PodShape(name, image, params, env, replicas, pre_stop))
    return shapes


def serve_config_of(rayservice: Mapping[str, Any]) -> dict[str, Any]:
    """`serveConfigV2` as KubeRay submits it: the YAML string, parsed."""
    config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    assert isinstance(config, dict)
    return config


@dataclass
class Node:
    name: str
    shape: PodShape
    process: subprocess.Popen[bytes]
    log: Path
    serve_port: int
    metrics_url: str
    """Ray's metrics port: what the chart's PodMonitor scrapes (`ray_theo_*`)."""
    node_id: str = ""
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0

    @property
    def serve_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def processes(self) -> list[psutil.Process]:
        """This node's `ray start` process and everything below it."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def raylet_pid(self) -> int | None:
        for proc in self.processes():
            try:
                if proc.name() == "raylet":
                    return int(proc.pid)
            except psutil.NoSuchProcess:
                continue
        return None

    def kill(self) -> None:
        """SIGKILL the whole process tree at once, as when a pod's node vanishes."""
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=30)
        self.process.wait(timeout=30)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class Cluster:
    """The RayService's Ray cluster on loopback. Use `start`, then `deploy`; `stop` at the end."""

    def __init__(
        self,
        rayservice: Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        root: Path | None = None,
    ) -> None:
        self.shapes = pod_shapes(rayservice, values)
        self.head_proxy_port = int(serve_config_of(rayservice)["http_options"]["port"])
        self.extra_env = dict(env or {})
        # Short: Ray's unix socket paths live below it.
        self.root = root or Path(tempfile.mkdtemp(prefix="thc-", dir="/tmp"))
        self.nodes: list[Node] = []
        # Each node gets a loopback address of its own, as each pod has an IP of its own (Ray
        # rewrites 127.0.0.1 in `--address` to the machine's external IP, so the head cannot
        # be there). The /24 is drawn at random: other clusters on this machine use others.
        self.subnet = f"127.{random.randint(2, 254)}.{random.randint(0, 255)}."
        self._ips = 0
        self.head_ip = self._next_ip()
        self.gcs_port = free_port(self.head_ip)
        self.dashboard_port = free_port()
        self._counter: dict[str, int] = {}
        self.timings: dict[str, float] = {}

    # ---- nodes ---------------------------------------------------------------------------------

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gcs_address(self) -> str:
        return f"{self.head_ip}:{self.gcs_port}"

    def _next_ip(self) -> str:
        self._ips += 1
        return f"{self.subnet}{self._ips}"

    def shape(self, group: str) -> PodShape:
        return next(s for s in self.shapes if s.group == group)

    def group(self, group: str) -> list[Node]:
        return [n for n in self.nodes if n.shape.group == group and n.alive]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def _command(
        self, shape: PodShape, name: str, temp_dir: Path, ip: str, metrics_port: int
    ) -> list[str]:
        ray = str(environment(shape.image) / "bin" / "ray")
        command = [ray, "start", "--block", f"--node-name={name}", f"--temp-dir={temp_dir}"]
        for key, value in shape.params.items():
            if key in ("dashboard-host", "block"):
                continue
            # KubeRay joins the params into a shell command line: unquote them the same way.
            (word,) = shlex.split(value) if value else [""]
            command.append(f"--{key}={word}")
        ports = {
            "node-manager-port": free_port(ip),
            "object-manager-port": free_port(ip),
            "dashboard-agent-listen-port": free_port(ip),
            "dashboard-agent-grpc-port": free_port(ip),
            "runtime-env-agent-port": free_port(ip),
            "metrics-export-port": metrics_port,
            "min-worker-port": 0,
            "max-worker-port": 0,
        }
        # A pod's object store is sized from its memory limit; here six nodes share one machine.
        command.append(f"--object-store-memory={OBJECT_STORE_BYTES}")
        if shape.group == HEAD:
            command += ["--head", f"--port={self.gcs_port}", "--dashboard-host=127.0.0.1"]
            command += [f"--dashboard-port={self.dashboard_port}", "--include-dashboard=true"]
            ports["ray-client-server-port"] = free_port(ip)
        else:
            command.append(f"--address={self.gcs_address}")
        command += [f"--{k}={v}" for k, v in ports.items()]
        command.append(f"--node-ip-address={ip}")
        return command

    def _environment(self, shape: PodShape, serve_port: int) -> dict[str, str]:
        venv = environment(shape.image)
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("THEO_", "RAY_", "VIRTUAL_ENV", "PYTHON", "OMP_"))
        }
        env = {**base, **RAY_ENV, **shape.env, **self.extra_env}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{base.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
        if shape.group != HEAD:
            env["RAY_SERVE_WORKER_PROXY_HTTP_PORT"] = str(serve_port)
            # With 0, `ray start --address` refuses to join a worker node ("multi-node clusters
            # are not supported"); on Linux the variable only picks loopback as the node IP,
            # which `--node-ip-address` (a loopback address) fixes for every node anyway.
            env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "1"
        return env

    def launch(self, group: str) -> Node:
        """Start one more pod of `group` (a new pod, as after a scale-up or a replacement)."""
        shape = self.shape(group)
        index = self._counter.get(group, 0)
        self._counter[group] = index + 1
        name = f"{group}-{index}"
        temp_dir = self.root / name
        temp_dir.mkdir(parents=True, exist_ok=True)
        serve_port = self.head_proxy_port if group == HEAD else free_port()
        ip = self.head_ip if group == HEAD else self._next_ip()
        log = self.root / f"{name}.log"
        metrics_port = free_port(ip)
        with log.open("ab") as out:
            process = subprocess.Popen(
                self._command(shape, name, temp_dir, ip, metrics_port),
                env=self._environment(shape, serve_port),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        node = Node(name, shape, process, log, serve_port, f"http://{ip}:{metrics_port}/metrics")
        self.nodes.append(node)
        return node

    def start(self, timeout_s: float = 300) -> None:
        started = time.monotonic()
        for shape in self.shapes:
            environment(shape.image)  # build (or find) every image's environment first
        self.timings["environments_s"] = time.monotonic() - started
        started = time.monotonic()
        head = self.launch(HEAD)
        self._wait(lambda: self._dashboard_up(), timeout_s, "the head's dashboard", [head])
        self.wait_registered([head], timeout_s)
        for shape in self.shapes:
            if shape.group != HEAD:
                # One pod at a time: a raylet must register within Ray's fixed 30 s, which a
                # loaded 2-core machine does not give a handful starting at once.
                for _ in range(shape.replicas):
                    self.wait_registered([self.launch(shape.group)], timeout_s)
        self.timings["cluster_start_s"] = time.monotonic() - started

    def replace(self, node: Node, timeout_s: float = 300) -> Node:
        """Kill a pod (if still alive) and start a new one in its group, as Kubernetes does."""
        if node.alive:
            node.kill()
        (new,) = self.wait_registered([self.launch(node.shape.group)], timeout_s)
        return new

    def run_in(self, node: Node, *args: str) -> subprocess.Popen[str]:
        """Run `python ARGS` in the node's image environment with the node's environment, as
        a command run inside its pod (e.g. the preStop hook)."""
        python = environment(node.shape.image) / "bin" / "python"
        return subprocess.Popen(
            [str(python), *args],
            env=self._environment(node.shape, node.serve_port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def pre_stop(self, node: Node) -> subprocess.Popen[str]:
        """Run the pod's rendered `preStop` hook in the pod's environment, as the kubelet
        would before stopping it; `--node-id` names the pod's node, since on this machine
        several Ray nodes run side by side."""
        if not node.shape.pre_stop:
            raise ValueError(f"the chart renders no preStop hook for {node.shape.group} pods")
        command = [*node.shape.pre_stop, f"--node-id={node.node_id}"]
        return subprocess.Popen(
            command,
            env=self._environment(node.shape, node.serve_port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_registered(
        self, nodes: list[Node], timeout_s: float = 300, restarts: int = 3
    ) -> list[Node]:
        """Wait until the nodes have joined. A node whose `ray start` exits first (on a loaded
        machine its raylet may miss Ray's 30 s registration window) is started again, as
        Kubernetes restarts a failed container, at most `restarts` times. Returns the nodes
        that joined (a restarted node is a new `Node`)."""
        pending = list(nodes)

        def registered() -> bool:
            alive = {
                n["node_name"]: n["node_id"] for n in self.ray_nodes() if n["state"] == "ALIVE"
            }
            for i, node in enumerate(pending):
                node.node_id = alive.get(node.name, "")
                if not node.node_id and not node.alive:
                    if node.restarts >= restarts:
                        raise RuntimeError(f"{node.name} exited:\n{self.log_tail(node)}")
                    pending[i] = self._restart(node)
            return all(node.node_id for node in pending)

        self._wait(registered, timeout_s, f"nodes {[n.name for n in pending]}", [])
        return pending

    def _restart(self, node: Node) -> Node:
        self.nodes.remove(node)
        new = self.launch(node.shape.group)
        new.restarts = node.restarts + 1
        return new

    def _wait(
        self, ready: Callable[[], bool], timeout_s: float, what: str, nodes: list[Node]
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for node in nodes:
                if not node.alive:
                    raise RuntimeError(f"{node.name} exited:\n{self.log_tail(node)}")
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        logs = "\n".join(self.log_tail(n) for n in nodes)
        raise TimeoutError(f"{what} not ready in {timeout_s:.0f} s\n{logs}")

    def log_tail(self, node: Node, lines: int = 30) -> str:
        text = node.log.read_text("utf-8", errors="replace").splitlines()[-lines:]
        return f"--- {node.name} ({node.log}) ---\n" + "\n".join(text)

    def stop(self) -> None:
        """Stop every node this harness started, by PID (SIGTERM, then SIGKILL)."""
        procs = [p for node in self.nodes for p in node.processes()]
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=20)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=20)
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.wait(timeout=10)

    # ---- the dashboard: Serve REST API and Ray's state API -------------------------------------

    def _dashboard_up(self) -> bool:
        return httpx.get(f"{self.dashboard}/api/serve/applications/", timeout=5).status_code == 200

    def ray_nodes(self) -> list[dict[str, Any]]:
        reply = httpx.get(
            f"{self.dashboard}/api/v0/nodes", params={"limit": 1000, "detail": "true"}, timeout=30
        )
        reply.raise_for_status()
        result: list[dict[str, Any]] = reply.json()["data"]["result"]["result"]
        return result

    def deploy(self, serve_config: Mapping[str, Any]) -> None:
        """PUT the config to the Serve REST API, as KubeRay does with `serveConfigV2`."""
        reply = httpx.put(
            f"{self.dashboard}/api/serve/applications/",
            content=json.dumps(serve_config),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        if reply.status_code != 200:
            raise RuntimeError(
                f"Serve REST API refused the config: {reply.status_code} {reply.text}"
            )

    def serve_details(self) -> dict[str, Any]:
        reply = httpx.get(f"{self.dashboard}/api/serve/applications/", timeout=30)
        reply.raise_for_status()
        details: dict[str, Any] = reply.json()
        return details

    def application(self, name: str) -> dict[str, Any]:
        return dict(self.serve_details().get("applications", {}).get(name) or {})

    def wait_application(
        self,
        name: str,
        timeout_s: float = 600,
        ready: Callable[[dict[str, Any]], bool] | None = None,
    ) -> float:
        """Seconds until the application is RUNNING (and `ready(application)`)."""
        started = time.monotonic()
        last: dict[str, Any] = {}

        def running() -> bool:
            nonlocal last
            last = self.application(name)
            if last.get("status") == "DEPLOY_FAILED":
                raise RuntimeError(f"deploy failed: {last.get('message')}")
            return last.get("status") == APP_RUNNING and (ready is None or ready(last))

        try:
            self._wait(running, timeout_s, f"application {name!r}", self.nodes[:1])
        except TimeoutError as exc:
            statuses = {
                d: (v.get("status"), v.get("message"))
                for d, v in (last.get("deployments") or {}).items()
            }
            raise TimeoutError(f"{exc}\nlast status: {last.get('status')} {statuses}") from None
        return time.monotonic() - started

    def placement(self, app: str) -> dict[str, dict[str, Any]]:
        """Node name -> its group, whether it runs a Serve proxy (and its status), and the Serve
        replicas (deployment names) it hosts."""
        details = self.serve_details()
        by_id = {n.node_id: n for n in self.nodes if n.node_id}
        table: dict[str, dict[str, Any]] = {
            n.name: {"group": n.shape.group, "proxy": None, "replicas": []}
            for n in self.nodes
            if n.alive
        }
        for node_id, proxy in (details.get("proxies") or {}).items():
            node = by_id.get(node_id)
            name = node.name if node else node_id
            table.setdefault(name, {"group": "?", "proxy": None, "replicas": []})
            table[name]["proxy"] = proxy.get("status")
        deployments = (details["applications"].get(app) or {}).get("deployments", {})
        for deployment, info in deployments.items():
            for replica in info.get("replicas", []):
                if replica.get("state") != "RUNNING":
                    continue
                node = by_id.get(replica.get("node_id"))
                name = node.name if node else str(replica.get("node_id"))
                table.setdefault(name, {"group": "?", "proxy": None, "replicas": []})
                table[name]["replicas"].append(deployment)
        return table

    @staticmethod
    def format_placement(table: Mapping[str, Mapping[str, Any]]) -> str:
        lines = [f"{'node':<12} {'group':<9} {'proxy':<10} replicas"]
        for name, row in sorted(table.items()):
            replicas = ", ".join(sorted(row["replicas"])) or "-"
            lines.append(f"{name:<12} {row['group']:<9} {row['proxy'] or '-':<10} {replicas}")
        return "\n".join(lines)
