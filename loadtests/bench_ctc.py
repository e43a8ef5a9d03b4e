"""CTC streaming benchmark, with issue 14's targets: the WeNet engine with a WeNet-sized
conformer (12 blocks, 256 dims, 4 heads; `engines.wenet.testing --size standard`), random
weights whose CTC output plays the clip's words back over its speech (`playback`): the
encoder's work is the standard conformer's, and every decoding step gives a partial to time
(`--random`: plain random weights, whose output is mostly blank).

One run prints:
1. engine per-chunk compute latency p50/p95 at decoding chunk 8 and 16, in-process, with the
   engine's threads;
2. over the real service (WebSocket `/v1/realtime`, sticky WeNet replica): for N concurrent
   sessions paced at real time in 40 ms PCM16 frames, starting at random moments of the first
   second (independent callers; `--synchronized` starts them together), the partial latency
   from the moment the audio a partial covers had been sent to the partial's arrival, p50/p95;
   the engine calls per second; CPU of the engine replica, the rest of Theo (gateway, HTTP
   proxy) and the clients;
3. the targets next to the figures: 8 sessions with partial p95 <= 100 ms; 16 sustained (no
   dropped frames, no errors, every session's audio decoded) with partial p95 <= 150 ms; the
   engine's threads.

    .venv/bin/python loadtests/bench_ctc.py [--sessions 8 16 24] [--seconds 11] [--quantized]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from process_cpu import serve_cpu_seconds

from serve.audio import decode_audio_bytes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "audio"
MODEL = "wenet-standard"
JFK_WORDS = (
    "and so my fellow americans ask not what your country can do for you "
    "ask what you can do for your country"
)
"""What the playback model says over jfk.wav's speech (the default clip)."""
TARGETS_MS = {8: 100.0, 16: 150.0}
ENGINE_PROCESS = "ray::ServeReplica:theo:wenet-"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def engine_chunks(model_dir: Path, audio: np.ndarray, quantized: bool) -> None:
    from engines.manifest import load_manifest
    from engines.wenet.backend import WenetBackend
    from engines.wenet.testing.bench import run

    backend = WenetBackend(load_manifest(model_dir / "theo.yaml"), quantized=quantized)
    backend.load()
    for chunk in (8, 16):
        stats = run(backend, audio, chunk, streams=1)
        print(
            f"engine chunk {chunk:2d} ({stats['chunk_ms']} ms audio), one torch thread: "
            f"compute p50 {stats['p50_ms']:6.1f} ms  p95 {stats['p95_ms']:6.1f} ms  "
            f"(rtf {stats['rtf']:.3f})",
            flush=True,
        )


def cpu_seconds() -> tuple[float, float]:
    """(engine replica, every Serve replica and proxy) CPU seconds so far."""
    return serve_cpu_seconds(ENGINE_PROCESS)


def engine_calls(base_url: str) -> float:
    """Calls the engine replica served so far (Serve's own request counter)."""
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("theo_engine_stream_steps_total") and MODEL in line
    )


async def one_session(url: str, audio: np.ndarray, delay: float) -> dict[str, Any]:
    from cli.realtime_client import RealtimeClient

    await asyncio.sleep(delay)
    async with RealtimeClient(url) as client:
        await client.wait_for("session.created")
        await client.stream(audio, 1.0, chunk_ms=40)
        await client.close_session(timeout=120)
    record = client.record
    latencies = [
        r.at - record.sent_time(int(r.event["timestamp_ms"]))
        for r in record.of_type("transcript.partial")
    ]
    kinds = [e["type"] for e in record.events]
    return {
        "latencies": latencies,
        "dropped": kinds.count("session.frames_dropped"),
        "errors": kinds.count("error"),
        "finals": kinds.count("transcript.final"),
        "closed": "session.closed" in kinds,
    }


async def service_level(
    url: str,
    base_url: str,
    audio: np.ndarray,
    sessions: int,
    synchronized: bool,
    random_weights: bool = False,
) -> dict[str, float]:
    rng = random.Random(sessions)
    delays = [0.0 if synchronized else rng.uniform(0.0, 1.0) for _ in range(sessions)]
    calls_before = await asyncio.to_thread(engine_calls, base_url)
    engine_before, server_before = cpu_seconds()
    client_before = sum(os.times()[:2])
    started = time.monotonic()
    results = await asyncio.gather(*(one_session(url, audio, d) for d in delays))
    wall = time.monotonic() - started
    engine_after, server_after = cpu_seconds()
    calls = await asyncio.to_thread(engine_calls, base_url) - calls_before
    latencies = [x for r in results for x in r["latencies"]]
    return {
        "partials": len(latencies),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "dropped": sum(r["dropped"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "decoded": sum(r["closed"] and (random_weights or r["finals"] > 0) for r in results),
        "calls_per_s": calls / wall,
        "engine_cpu": 100 * (engine_after - engine_before) / wall,
        "rest_cpu": 100 * ((server_after - server_before) - (engine_after - engine_before)) / wall,
        "client_cpu": 100 * (sum(os.times()[:2]) - client_before) / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, nargs="+", default=[8, 16, 24])
    parser.add_argument("--seconds", type=float, default=11.0, help="audio per session")
    parser.add_argument("--quantized", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=0, help="engine cpu_threads (0: the machine's CPUs)"
    )
    parser.add_argument("--synchronized", action="store_true", help="start all sessions at once")
    parser.add_argument("--random", action="store_true", help="plain random weights")
    parser.add_argument("--audio", type=Path, default=SHARED / "jfk.wav")
    args = parser.parse_args()

    from cli.realtime_client import realtime_url
    from engines.wenet.testing import generate_model
    from serve import local
    from serve.settings import TheoSettings

    cpus = local.machine_cpus()
    threads = args.threads or cpus
    print(
        f"{MODEL}: WeNet conformer (12 blocks, 256 dims), "
        f"{'int8' if args.quantized else 'float32'}; engine threads {threads} (decoding steps at "
        f"once, one torch thread each); machine: {cpus} CPUs; load average (1/5/15 min) at "
        f"start: {load()}",
        flush=True,
    )
    models_dir = Path(tempfile.mkdtemp(prefix="theo-bench-ctc-"))
    model_dir = models_dir / MODEL
    clip = decode_audio_bytes(args.audio.read_bytes())
    generate_model(
        model_dir,
        size="standard",
        name=MODEL,
        quantize=args.quantized,
        playback=None if args.random else JFK_WORDS,
        fit_audio=None if args.random else clip,
        config_overrides={"quantized": args.quantized},
    )
    audio = np.resize(clip, int(16_000 * args.seconds))
    engine_chunks(model_dir, audio, args.quantized)

    port = local.free_port()
    settings = TheoSettings(
        port=port,
        models_dir=models_dir,
        models=[MODEL],
        gateway={"num_cpus": 0.1},
        wenet={"cpu_threads": args.threads},
    )
    local.start_local_ray(settings=settings)
    levels: dict[int, dict[str, float]] = {}
    base_url = f"http://127.0.0.1:{port}"
    try:
        local.deploy(settings)
        url = realtime_url(base_url, model=MODEL)
        asyncio.run(service_level(url, base_url, audio[: 16_000 * 2], 1, True))  # warm
        print(
            "sessions | partial ms p50    p95 | partials | engine calls/s | dropped errors "
            "decoded | CPU: engine, rest of Theo, clients"
        )
        for sessions in args.sessions:
            level = asyncio.run(service_level(url, base_url, audio, sessions, args.synchronized))
            levels[sessions] = level
            print(
                f"{sessions:8d} | {level['p50_ms']:9.1f} {level['p95_ms']:6.1f} | "
                f"{level['partials']:8.0f} | {level['calls_per_s']:14.1f} | "
                f"{level['dropped']:7.0f} {level['errors']:6.0f} {level['decoded']:4.0f}/"
                f"{sessions:<3d}| {level['engine_cpu']:4.0f}% {level['rest_cpu']:4.0f}% "
                f"{level['client_cpu']:4.0f}%",
                flush=True,
            )
    finally:
        local.shutdown()
    print(
        f"sessions start at random moments of the first second"
        f"{' (here: all at once)' if args.synchronized else ''}; "
        "decoded: sessions closed in time, with their finals"
    )
    print("\ntargets (issue 14), this run:")
    print(
        f"  [{'PASS' if threads == cpus else 'FAIL'}] engine threads = the machine's CPUs: "
        f"{threads} of {cpus}"
    )
    for sessions, limit in TARGETS_MS.items():
        level = levels.get(sessions)
        if level is None:
            print(f"  [n/a ] {sessions} sessions: not run")
            continue
        sustained = not level["dropped"] and not level["errors"] and level["decoded"] == sessions
        ok = sustained and level["p95_ms"] <= limit
        print(
            f"  [{'PASS' if ok else 'FAIL'}] {sessions} sessions sustained, partial p95 <= "
            f"{limit:.0f} ms: p95 {level['p95_ms']:.0f} ms, "
            f"{'sustained' if sustained else 'NOT sustained'}"
        )
    print(f"load average (1/5/15 min) at end: {load()}")


if __name__ == "__main__":
    main()
