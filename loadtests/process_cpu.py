"""CPU time of the Serve processes a benchmark started, read from /proc (benchmarks only)."""

from __future__ import annotations

import os
from pathlib import Path

SERVER_PROCESSES = ("ray::ServeReplica:theo:", "ray::ProxyActor")


def serve_cpu_seconds(engine_prefix: str) -> tuple[float, float]:
    """(CPU seconds of the replicas whose process title starts with `engine_prefix`, CPU
    seconds of every Serve replica and proxy) so far, for the processes under this one."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="ignore")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        if title.startswith(SERVER_PROCESSES):
            cpu[pid] = (title, (int(fields[11]) + int(fields[12])) / tick)
    me = os.getpid()

    def mine(pid: int) -> bool:
        while pid > 1:
            if pid == me:
                return True
            pid = parents.get(pid, 0)
        return False

    ours = [value for pid, value in cpu.items() if mine(pid)]
    engine = sum(seconds for title, seconds in ours if title.startswith(engine_prefix))
    return engine, sum(seconds for _, seconds in ours)
