"""Resident memory of the local run's Serve processes (the Ray processes this test process
started): Serve's HTTP proxy, the gateway replica and the engine replicas.

RSS counts the pages of Ray's object store (shared memory) that a process has touched: large
request bodies pass through it, so RSS rises towards the store's size and stays there without
any leak. USS, the memory private to the process, is what grows when a process keeps
something; both are reported."""

from __future__ import annotations

import psutil

PROXY = "ray::ProxyActor"
REPLICA = "ray::ServeReplica:"
GATEWAY = "Gateway"


def role(name: str) -> str | None:
    """`proxy`, `gateway`, `engine:<deployment>` or None for other processes."""
    if name.startswith(PROXY):
        return "proxy"
    if name.startswith(REPLICA):
        # `ray::ServeReplica:<app>:<deployment>[.<method running now>]`
        deployment = name[len(REPLICA) :].split(":", 1)[-1].split(".", 1)[0]
        return "gateway" if deployment.startswith(GATEWAY) else f"engine:{deployment}"
    return None


def serve_processes() -> dict[str, psutil.Process]:
    """Role -> process, among this process's descendants."""
    found: dict[str, psutil.Process] = {}
    for process in psutil.Process().children(recursive=True):
        try:
            kind = role(process.cmdline()[0] if process.cmdline() else process.name())
        except psutil.Error:
            continue
        if kind is not None:
            found[kind] = process
    return found


def rss_mb(processes: dict[str, psutil.Process] | None = None) -> dict[str, float]:
    """Role -> resident set size in MiB (processes that are gone are left out)."""
    result: dict[str, float] = {}
    for kind, process in (processes or serve_processes()).items():
        try:
            result[kind] = round(process.memory_info().rss / 2**20, 1)
        except psutil.Error:
            continue
    return result


def uss_mb(processes: dict[str, psutil.Process] | None = None) -> dict[str, float]:
    """Role -> unique (private) memory in MiB."""
    result: dict[str, float] = {}
    for kind, process in (processes or serve_processes()).items():
        try:
            result[kind] = round(process.memory_full_info().uss / 2**20, 1)
        except psutil.Error:
            continue
    return result


def describe(rss: dict[str, float], uss: dict[str, float] | None = None) -> str:
    """`gateway 353 MiB (private 180)`, one entry per role."""
    return ", ".join(
        f"{kind} {mb:.0f} MiB" + (f" (private {uss[kind]:.0f})" if uss and kind in uss else "")
        for kind, mb in sorted(rss.items())
    )


def snapshot() -> str:
    processes = serve_processes()
    return describe(rss_mb(processes), uss_mb(processes))
