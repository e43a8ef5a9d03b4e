"""The chart runs every container with a read-only root filesystem and writable emptyDirs only
at `/tmp` and `$HOME` (plus `/dev/shm` and the model volume). This runs the real service
(`theo serve`: Ray, Serve, the gateway and a Whisper replica) in a mount namespace where `/` is
read-only and only `/tmp` and `$HOME` are writable tmpfs mounts, and transcribes a clip.

What it cannot show: the images' own paths (checked by their Dockerfiles), the Ray dashboard
and autoscaler of a KubeRay head (the local run starts neither).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serve.local import free_port, wait_healthy
from tests.support import clips

REPO = Path(__file__).resolve().parents[1]
SCRIPT = r"""
set -e
mount --make-rprivate /
# A checkout under /tmp would vanish under the new /tmp: carry it over through /mnt.
under_tmp=0; case "$REPO" in /tmp/*) under_tmp=1; mount --bind "$REPO" /mnt ;; esac
mount -o remount,bind,ro /
mount -t tmpfs -o size=4g tmpfs /tmp
if [ "$under_tmp" = 1 ]; then mkdir -p "$REPO" && mount --bind /mnt "$REPO"; fi
mkdir -p /tmp/home && export HOME=/tmp/home
if touch /read-only-probe 2>/dev/null; then echo "the root is writable" >&2; exit 3; fi
cd "$REPO"
exec "$PYTHON" -m cli serve --port "$PORT"
"""


@pytest.mark.timeout(300)
def test_the_service_runs_on_a_read_only_root() -> None:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to make a read-only root")
    port = free_port()
    env = {
        **os.environ,
        "REPO": str(REPO),
        "PYTHON": sys.executable,
        "PORT": str(port),
        "THEO_MODELS": "whisper-tiny.en",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    process = subprocess.Popen(
        ["unshare", "--mount", "--fork", "bash", "-c", SCRIPT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, 240, process=process)
        audio = clips()["jfk.wav"].path.read_bytes()
        reply = httpx.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": ("jfk.wav", audio, "audio/wav")},
            data={"model": "whisper-tiny.en"},
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        assert "ask not what your country can do for you" in reply.json()["text"].lower()
    finally:
        stop_namespace(process)


def namespace_pids(leader: int) -> list[int]:
    """Every process in the mount namespace `leader` (unshare's child) lives in."""
    try:
        namespace = os.readlink(f"/proc/{leader}/ns/mnt")
    except OSError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "mnt") == namespace:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def stop_namespace(process: subprocess.Popen[str]) -> None:
    """Kill every process of the namespace `theo serve` ran in: its Ray, its sockets and its
    files (a tmpfs `/tmp`) go with it, and nothing outside the namespace is touched."""
    task = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    children = [int(pid) for pid in task.read_text().split()] if task.exists() else []
    for pid in namespace_pids(children[0]) if children else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.kill()
    process.wait(timeout=30)
