# ruff: noqa: E501  (plot and table lines read better unbroken)
"""Serve autoscaling shown under load: the local service with the Whisper deployment on
autoscaling (min 1, max 2 replicas here), driven by locust, then left idle to scale down.

Every second it records the Whisper deployment's replicas from `serve.status()` (running,
starting) and the autoscaler's target (`ray_serve_autoscaling_target_replicas` from Ray's
metrics export), and joins locust's per-second history (users, requests/s, failures/s, latency
percentiles). Writes `<out>/autoscale-<stamp>.csv` and `.png` (matplotlib).

    .venv/bin/python loadtests/autoscale_demo.py [--users 8] [--load-s 120] [--idle-s 120]

In a cluster the same signal goes further: replicas the Serve autoscaler wants but cannot
place are pending Ray actors asking for the `whisper`/`wenet` resource; the Ray autoscaler adds
worker pods of the group that offers it, and the cluster autoscaler (or Karpenter) adds the
GPU node those pods need. Scale-down runs the same chain backwards after the idle timeouts.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "whisper-tiny.en"
DEPLOYMENT = "whisper-whisper-tiny_en"
"""`serve.builder.engine_deployment_name` of MODEL."""


@dataclass
class Sample:
    t: float
    phase: str
    running: int
    starting: int
    target: float | None
    users: float | None = None
    rps: float | None = None
    failures_per_s: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


@dataclass
class Recorder:
    """Polls Serve's status and the autoscaler's target once a second."""

    app: str
    metrics_port: int
    started: float = field(default_factory=time.time)
    phase: str = "warm-up"
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def replicas(self) -> tuple[int, int]:
        from ray import serve

        status = serve.status().applications[self.app].deployments[DEPLOYMENT]
        states = {str(getattr(k, "value", k)): v for k, v in status.replica_states.items()}
        return states.get("RUNNING", 0), states.get("STARTING", 0)

    def target(self) -> float | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return None
        pattern = rf'^ray_serve_autoscaling_target_replicas\{{[^}}]*deployment="{DEPLOYMENT}"[^}}]*\}} (\S+)'
        match = re.search(pattern, text, re.M)
        return float(match.group(1)) if match else None

    def run(self) -> None:
        while not self.stop.is_set():
            running, starting = self.replicas()
            self.samples.append(
                Sample(
                    round(time.time() - self.started, 1),
                    self.phase,
                    running,
                    starting,
                    self.target(),
                )
            )
            self.stop.wait(1.0)


def join_locust_history(samples: list[Sample], history: Path, started: float) -> None:
    """Fill each sample with the locust aggregate row nearest in time (at most 1.5 s away)."""
    if not history.exists():
        return
    rows = []
    with history.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                rows.append(row)

    def number(row: dict[str, str], key: str) -> float | None:
        value = row.get(key, "N/A")
        return None if value in ("N/A", "") else float(value)

    for sample in samples:
        wall = started + sample.t
        best = min(rows, key=lambda r: abs(float(r["Timestamp"]) - wall), default=None)
        if best is None or abs(float(best["Timestamp"]) - wall) > 1.5:
            continue
        sample.users = number(best, "User Count")
        sample.rps = number(best, "Requests/s")
        sample.failures_per_s = number(best, "Failures/s")
        sample.p50_ms = number(best, "50%")
        sample.p95_ms = number(best, "95%")
        sample.p99_ms = number(best, "99%")


def write_csv(samples: list[Sample], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(samples[0])))
        writer.writeheader()
        for s in samples:
            writer.writerow(asdict(s))


def plot(samples: list[Sample], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t for s in samples]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    ax1.step(
        t,
        [s.target if s.target is not None else float("nan") for s in samples],
        where="post",
        label="target (autoscaler)",
    )
    ax1.step(t, [s.running for s in samples], where="post", label="running")
    ax1.step(
        t,
        [s.running + s.starting for s in samples],
        where="post",
        linestyle=":",
        label="running + starting",
    )
    ax1.set_ylabel("replicas")
    ax1.set_ylim(0, 3)
    ax1.legend(loc="upper right")
    for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        values = [getattr(s, key) for s in samples]
        ax2.plot(t, [v / 1000 if v is not None else float("nan") for v in values], label=label)
    ax2.set_ylabel("latency (s)")
    ax2.legend(loc="upper right")
    ax3.plot(t, [s.rps if s.rps is not None else float("nan") for s in samples], label="requests/s")
    ax3.plot(
        t,
        [s.failures_per_s if s.failures_per_s is not None else float("nan") for s in samples],
        label="failures/s",
    )
    ax3.set_ylabel("throughput")
    ax3.set_xlabel("time (s)")
    ax3.legend(loc="upper right")
    for ax in (ax1, ax2, ax3):
        load = [s.t for s in samples if s.phase == "load"]
        if load:
            ax.axvspan(min(load), max(load), color="orange", alpha=0.08)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(samples: list[Sample]) -> str:
    load = [s for s in samples if s.phase == "load"]
    idle = [s for s in samples if s.phase == "idle"]
    up = next((s.t for s in load if s.running >= 2), None)
    load_start = load[0].t if load else 0.0
    down = next((s.t for s in idle if s.running <= 1), None)
    idle_start = idle[0].t if idle else 0.0
    rps = [s.rps for s in load if s.rps]
    lines = [
        f"replicas: {min(s.running for s in samples)}..{max(s.running for s in samples)} running",
        f"scale-up to 2 after {up - load_start:.0f} s of load" if up is not None else "no scale-up",
        f"scale-down to 1 after {down - idle_start:.0f} s idle"
        if down is not None
        else "no scale-down seen",
        f"throughput under load: mean {sum(rps) / len(rps):.2f} req/s" if rps else "no throughput",
        f"failures: {sum(s.failures_per_s or 0 for s in samples):.1f} (per-second sum)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--load-s", type=int, default=120)
    parser.add_argument("--idle-s", type=int, default=120, help="longest wait for scale-down")
    parser.add_argument("--target-ongoing", type=float, default=2.0)
    parser.add_argument("--downscale-delay-s", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from engines.bundled import install_bundled
    from serve import local
    from serve.settings import TheoSettings

    models_dir = Path(tempfile.mkdtemp(prefix="theo-autoscale-models-"))
    install_bundled(models_dir)
    port = local.free_port()
    settings = TheoSettings(
        port=port,
        models_dir=models_dir,
        models=[MODEL],
        gateway={"num_cpus": 0.1},
        whisper={
            "cpu_threads": 1,
            "max_batch_size": 4,
            "batch_wait_timeout_s": 0.05,
            "autoscaling": {
                "min_replicas": 1,
                "max_replicas": 2,
                "target_ongoing_requests": args.target_ongoing,
                "upscale_delay_s": 3.0,
                "downscale_delay_s": args.downscale_delay_s,
                "metrics_interval_s": 1.0,
                "look_back_period_s": 5.0,
            },
        },
    )
    stamp = datetime.now().strftime("%Y-%m-%d-%H%M")
    args.out.mkdir(parents=True, exist_ok=True)
    local.start_local_ray(settings=settings)
    try:
        import ray

        local.deploy(settings)
        url = f"http://127.0.0.1:{port}"
        local.wait_healthy(url)
        recorder = Recorder(
            settings.app_name, ray._private.worker.global_worker.node.metrics_export_port
        )
        sampler = threading.Thread(target=recorder.run, daemon=True)
        sampler.start()
        time.sleep(5)
        recorder.phase = "load"
        history = run_locust(url, args.users, args.load_s, args.out / f"locust-{stamp}")
        recorder.phase = "idle"
        wait_scale_down(recorder, args.idle_s)
        recorder.stop.set()
        sampler.join()
    finally:
        local.shutdown()
    samples = recorder.samples
    join_locust_history(samples, history, recorder.started)
    history.unlink(missing_ok=True)
    csv_path = args.out / f"autoscale-{stamp}.csv"
    png_path = args.out / f"autoscale-{stamp}.png"
    write_csv(samples, csv_path)
    plot(
        samples,
        png_path,
        f"Theo autoscaling: {MODEL}, min 1 / max 2 replicas, {args.users} locust users",
    )
    print(summary(samples))
    print(f"wrote {csv_path.relative_to(ROOT)} and {png_path.relative_to(ROOT)}")


def wait_scale_down(recorder: Recorder, timeout_s: float, settle_s: float = 10.0) -> None:
    """Until one replica has been running alone for `settle_s`, or `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    alone_since: float | None = None
    while time.monotonic() < deadline:
        time.sleep(1)
        last = recorder.samples[-1]
        if last.running <= 1 and last.starting == 0:
            alone_since = alone_since or time.monotonic()
            if time.monotonic() - alone_since >= settle_s:
                return
        else:
            alone_since = None


def run_locust(url: str, users: int, seconds: int, prefix: Path) -> Path:
    command: list[Any] = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--headless", "-u", users, "-r", max(1, users // 2), "-t", f"{seconds}s",
        "--stop-timeout", "30", "--host", url, "--theo-models", MODEL,
        "--csv", prefix, "--csv-full-history", "--only-summary", "TranscriptionUser",
    ]  # fmt: skip
    subprocess.run([str(c) for c in command], check=False, cwd=ROOT, timeout=seconds + 120)
    for suffix in ("_stats.csv", "_failures.csv", "_exceptions.csv"):
        Path(f"{prefix}{suffix}").unlink(missing_ok=True)
    return Path(f"{prefix}_stats_history.csv")


if __name__ == "__main__":
    main()
