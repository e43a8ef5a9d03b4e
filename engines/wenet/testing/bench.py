"""Engine-level streaming benchmark (no Serve): per-chunk compute latency and real-time factor.

`python -m engines.wenet.testing.bench MODEL_DIR [--chunk 8 16] [--audio WAV] [--streams N]
[--paced]`

Each stream is fed chunk-sized pieces of audio; the time of each `accept` call that decoded
an encoder chunk is one sample (fbank + encoder + CTC + search + endpoint); its wall time
and its thread CPU time (with one torch thread, the compute cost whatever else runs on the
machine).
- default: N streams decoded back to back on one thread (compute cost, RTF).
- `--paced`: N streams in real time, one thread each, as concurrent sessions of one replica;
  a sample is the time from a chunk's audio being due to its partial being ready, so it
  includes waiting for the CPU. A load is sustained when p95 stays below the chunk length.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.base import SAMPLE_RATE, TranscribeOptions
from engines.manifest import load_manifest
from engines.wenet.backend import WenetBackend
from engines.wenet.features import FRAME_SHIFT_MS
from engines.wenet.testing.audio import bursts, load_audio

FRAME_SHIFT_SAMPLES = SAMPLE_RATE * FRAME_SHIFT_MS // 1000


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def run(
    backend: WenetBackend, audio: npt.NDArray[np.float32], chunk: int, streams: int
) -> dict[str, Any]:
    backend.config = backend.config.model_copy(update={"decoding_chunk_size": chunk})
    sessions = [backend.open_stream(f"bench-{i}", TranscribeOptions()) for i in range(streams)]
    rate = sessions[0].decoder.schedule.subsampling_rate
    piece = chunk * rate * FRAME_SHIFT_SAMPLES  # new samples per encoder chunk
    latencies: list[float] = []
    encoder: list[float] = []
    searches: list[float] = []
    cpu: list[float] = []
    started = time.perf_counter()
    for start in range(0, len(audio), piece):
        for stream in sessions:
            before = stream.stats.chunks
            encoder_before = stream.stats.encoder_s
            search_before = stream.stats.search_s
            t0 = time.perf_counter()
            c0 = time.thread_time()
            backend.accept(stream, audio[start : start + piece])
            if stream.stats.chunks > before:
                latencies.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
                encoder.append(stream.stats.encoder_s - encoder_before)
                searches.append(stream.stats.search_s - search_before)
    for stream in sessions:
        backend.finish(stream)
    wall = time.perf_counter() - started
    audio_s = len(audio) / SAMPLE_RATE * streams
    return {
        "chunk": chunk,
        "chunk_ms": chunk * rate * 10,
        "streams": streams,
        "chunks": len(latencies),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p95_ms": round(percentile(latencies, 95) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2) if latencies else 0.0,
        "cpu_p50_ms": round(percentile(cpu, 50) * 1000, 2),
        "cpu_p95_ms": round(percentile(cpu, 95) * 1000, 2),
        "encoder_p50_ms": round(percentile(encoder, 50) * 1000, 2),
        "search_p50_ms": round(percentile(searches, 50) * 1000, 2),
        "rtf": round(wall / audio_s, 4),
        "cpu_rtf": round(sum(cpu) / audio_s, 4),
        "realtime_streams_per_core": round(audio_s / wall, 1),
    }


def run_paced(
    backend: WenetBackend, audio: npt.NDArray[np.float32], chunk: int, streams: int
) -> dict[str, Any]:
    backend.config = backend.config.model_copy(update={"decoding_chunk_size": chunk})
    sessions = [backend.open_stream(f"paced-{i}", TranscribeOptions()) for i in range(streams)]
    rate = sessions[0].decoder.schedule.subsampling_rate
    piece = chunk * rate * FRAME_SHIFT_SAMPLES
    period = piece / SAMPLE_RATE
    latencies: list[list[float]] = [[] for _ in sessions]
    start = time.perf_counter() + 0.1

    def feed(index: int) -> None:
        stream = sessions[index]
        phase = start + period * index / streams  # sessions do not arrive in lockstep
        for n, offset in enumerate(range(0, len(audio), piece)):
            due = phase + (n + 1) * period  # the piece has fully arrived
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            before = stream.stats.chunks
            backend.accept(stream, audio[offset : offset + piece])
            if stream.stats.chunks > before:
                latencies[index].append(time.perf_counter() - due)
        backend.finish(stream)

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples = [x for per_stream in latencies for x in per_stream]
    return {
        "chunk": chunk,
        "chunk_ms": round(period * 1000),
        "streams": streams,
        "paced": True,
        "chunks": len(samples),
        "p50_ms": round(percentile(samples, 50) * 1000, 2),
        "p95_ms": round(percentile(samples, 95) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2) if samples else 0.0,
        "sustained": percentile(samples, 95) < period,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engines.wenet.testing.bench")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--chunk", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--audio", type=Path, help="default: 10 s of speech-like noise")
    parser.add_argument("--streams", type=int, nargs="+", default=[1])
    parser.add_argument("--paced", action="store_true", help="real-time sessions, 1 thread each")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quantized", action="store_true")
    parser.add_argument("--rescoring-weight", type=float)
    args = parser.parse_args(argv)
    manifest = load_manifest(args.model_dir / "theo.yaml")
    backend = WenetBackend(manifest, num_threads=args.threads, quantized=args.quantized)
    if args.rescoring_weight is not None:  # may be 0, which overrides ignore
        backend.config = backend.config.model_copy(
            update={"rescoring_weight": args.rescoring_weight}
        )
    backend.load()
    audio = load_audio(args.audio) if args.audio else bursts([("speech", 10.0)], amplitude=0.1)
    run(backend, audio[: SAMPLE_RATE * 2], args.chunk[0], 1)  # warm-up
    for chunk in args.chunk:
        for streams in args.streams:
            bench = run_paced if args.paced else run
            print(json.dumps(bench(backend, audio, chunk, streams)), flush=True)


if __name__ == "__main__":
    main()
