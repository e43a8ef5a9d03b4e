"""CTC streaming benchmark: the WeNet engine with a WeNet-sized random-weight conformer
(12 blocks, 256 dims, 4 heads; `engines.wenet.testing --size standard`).

One run prints:
1. engine per-chunk compute latency p50/p95 at decoding chunk 8 and 16, in-process;
2. over the real service (WebSocket `/v1/realtime`, sticky WeNet replica): partial latency,
   from the moment the audio a partial covers has been sent to the partial's arrival, p50/p95,
   for N concurrent sessions paced at real time;
3. the largest N tried that keeps up: no dropped frames, no errors and partial p95 <= 1 s.

    .venv/bin/python loadtests/bench_ctc.py [--sessions 8 16 24] [--seconds 8] [--quantized]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from serve.audio import decode_audio_bytes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "audio"
MODEL = "wenet-standard"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def engine_chunks(model_dir: Path, audio: np.ndarray, quantized: bool) -> None:
    from engines.manifest import load_manifest
    from engines.wenet.backend import WenetBackend
    from engines.wenet.testing.bench import run

    backend = WenetBackend(load_manifest(model_dir / "theo.yaml"), quantized=quantized)
    backend.load()
    for chunk in (8, 16):
        stats = run(backend, audio, chunk, streams=1)
        print(
            f"engine chunk {chunk:2d} ({stats['chunk_ms']} ms audio): compute p50 "
            f"{stats['p50_ms']:6.1f} ms  p95 {stats['p95_ms']:6.1f} ms  "
            f"(rtf {stats['rtf']:.3f})",
            flush=True,
        )


async def one_session(url: str, headers: dict[str, str], audio: np.ndarray) -> dict[str, Any]:
    from cli.realtime_client import RealtimeClient

    async with RealtimeClient(url, headers) as client:
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
    }


async def service_level(url: str, audio: np.ndarray, sessions: int) -> dict[str, float]:
    results = await asyncio.gather(*(one_session(url, {}, audio) for _ in range(sessions)))
    latencies = [x for r in results for x in r["latencies"]]
    return {
        "partials": len(latencies),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "dropped": sum(r["dropped"] for r in results),
        "errors": sum(r["errors"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, nargs="+", default=[8, 16, 24])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--quantized", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--audio", type=Path, default=SHARED / "jfk.wav")
    args = parser.parse_args()

    from cli.realtime_client import realtime_url
    from engines.wenet.testing import generate_model
    from serve import local
    from serve.settings import TheoSettings

    models_dir = Path(tempfile.mkdtemp(prefix="theo-bench-ctc-"))
    model_dir = models_dir / MODEL
    generate_model(
        model_dir,
        size="standard",
        name=MODEL,
        quantize=args.quantized,
        config_overrides={"num_threads": args.threads, "quantized": args.quantized},
    )
    audio = decode_audio_bytes(args.audio.read_bytes())[: int(16_000 * args.seconds)]
    engine_chunks(model_dir, audio, args.quantized)

    port = local.free_port()
    settings = TheoSettings(
        port=port, models_dir=models_dir, models=[MODEL], gateway={"num_cpus": 0.1}
    )
    local.start_local_ray(settings=settings)
    sustained = 0
    try:
        local.deploy(settings)
        url = realtime_url(f"http://127.0.0.1:{port}", model=MODEL)
        asyncio.run(service_level(url, audio[: 16_000 * 2], 1))  # warm
        for sessions in args.sessions:
            level = asyncio.run(service_level(url, audio, sessions))
            ok = not level["dropped"] and not level["errors"] and level["p95_ms"] <= 1000
            sustained = sessions if ok else sustained
            print(
                f"{sessions:3d} sessions at real time: partial latency p50 {level['p50_ms']:7.1f}"
                f" ms  p95 {level['p95_ms']:7.1f} ms  partials {level['partials']:.0f}  "
                f"dropped {level['dropped']:.0f}  errors {level['errors']:.0f}  "
                f"{'sustained' if ok else 'NOT sustained'}",
                flush=True,
            )
    finally:
        local.shutdown()
    print(f"largest session count sustained: {sustained}")


if __name__ == "__main__":
    main()
