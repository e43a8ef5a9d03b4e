"""Batch throughput: bare faster-whisper batched pipeline vs. Theo served over HTTP.

One run, same model and cores. Prints audio-seconds per second for:
- bare: faster-whisper `BatchedInferencePipeline` in-process on the same clips joined into one
  long file (so its own batching can fill batches), batch_size = --batch-size;
- served: Theo on a private local Ray at 1, 4 and 16 concurrent HTTP clients;
and the ratios served@16 / bare and served@16 / served@1. Then long files (60-110 s of
espeak-ng speech and the real clips, `tests/speech.py`) at 1, 4 and 16 clients, decoded with and
without the previous window's text as context (`condition_on_previous_text`): what the context
costs. With it, a request's windows go through the batcher one after another.

    .venv/bin/python loadtests/bench_batch.py [--requests 48] [--long-requests 8]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from serve.audio import decode_audio_bytes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "audio"
CLIPS = ["jfk.wav", "6930-75918-0000.wav", "7902-96591-0000.wav"]


def wav_bytes(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def load_clips(audio_dir: Path) -> list[tuple[bytes, np.ndarray]]:
    out = []
    for name in CLIPS:
        data = (audio_dir / name).read_bytes()
        out.append((data, decode_audio_bytes(data)))
    return out


def bare_pipeline(model_dir: Path, threads: int) -> object:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
    return BatchedInferencePipeline(model)


def bare_per_file(pipeline: object, audios: list[np.ndarray], batch_size: int) -> float:
    """The same requests, one `transcribe` call each, in-process (no HTTP, no Ray)."""
    started = time.perf_counter()
    for audio in audios:
        segments, _ = pipeline.transcribe(audio, batch_size=batch_size, language="en")  # type: ignore[attr-defined]
        list(segments)
    return sum(len(a) for a in audios) / 16_000 / (time.perf_counter() - started)


def bare_joined(pipeline: object, audios: list[np.ndarray], batch_size: int) -> float:
    """All clips joined into one long file, so the pipeline fills its batches and packs
    several short clips into each 30 s window: an upper bound no per-request server reaches."""
    silence = np.zeros(8000, dtype=np.float32)
    joined = np.concatenate([x for a in audios for x in (a, silence)])
    started = time.perf_counter()
    segments, _ = pipeline.transcribe(joined, batch_size=batch_size, language="en")  # type: ignore[attr-defined]
    text = " ".join(s.text for s in segments)
    elapsed = time.perf_counter() - started
    assert "country" in text.lower()
    return len(joined) / 16_000 / elapsed


def long_payloads(count: int) -> list[tuple[bytes, float]]:
    """`count` different long files of 60-110 s."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.speech import VOICES, long_file

    files = [
        long_file(200 + i, 1.0 + 0.25 * (i % 3), VOICES[i % len(VOICES)]) for i in range(count)
    ]
    return [(wav_bytes(f.audio), f.duration) for f in files]


def served_throughput(
    url: str, payloads: list[tuple[bytes, float]], clients: int, **fields: str
) -> float:
    def one(item: tuple[bytes, float]) -> float:
        r = httpx.post(
            f"{url}/v1/audio/transcriptions",
            data={"model": "whisper-tiny.en", "language": "en", **fields},
            files={"file": ("a.wav", item[0])},
            timeout=600,
        )
        r.raise_for_status()
        return item[1]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        seconds = sum(pool.map(one, payloads))
    return seconds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audio-dir", type=Path, default=SHARED)
    parser.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--long-requests", type=int, default=8, help="long files per level (0: skip them)"
    )
    args = parser.parse_args()

    from engines.bundled import install_bundled
    from serve import local
    from serve.settings import TheoSettings

    clips = load_clips(args.audio_dir)
    models_dir = Path(tempfile.mkdtemp(prefix="theo-bench-models-"))
    install_bundled(models_dir)
    from engines.registry import ModelRegistry

    model_dir = ModelRegistry.scan(models_dir).models["whisper-tiny.en"].model_path()
    audios = [a for _, a in clips] * (args.requests // len(clips))
    pipeline = bare_pipeline(model_dir, args.threads)
    bare_per_file(pipeline, audios[:2], args.batch_size)  # warm
    bare = bare_per_file(pipeline, audios, args.batch_size)
    joined = bare_joined(pipeline, audios, args.batch_size)
    print(f"bare batched pipeline, per request:   {bare:7.2f} audio-s/s", flush=True)
    print(f"bare batched pipeline, clips joined:  {joined:7.2f} audio-s/s (packing bound)")

    port = local.free_port()
    settings = TheoSettings(
        port=port,
        models_dir=models_dir,
        models=["whisper-tiny.en"],
        whisper={
            "max_batch_size": args.batch_size,
            "batch_wait_timeout_s": 0.05,
            "cpu_threads": args.threads,
        },
        gateway={"num_cpus": 0.1},
    )
    local.start_local_ray(settings=settings)
    try:
        local.deploy(settings)
        url = f"http://127.0.0.1:{port}"
        payloads = [(wav_bytes(a), len(a) / 16_000) for a in audios]
        served_throughput(url, payloads[:4], 4)  # warm
        print(
            f"served: whisper-tiny.en engine threads {engine_threads(url, 'whisper-tiny.en')} "
            f"(theo_engine_threads; --threads {args.threads}, 0 = the CPUs it is given)",
            flush=True,
        )
        served = {}
        for clients in (1, 4, 16):
            served[clients] = served_throughput(url, payloads, clients)
            print(
                f"served, {clients:2d} concurrent clients:    {served[clients]:7.2f} audio-s/s",
                flush=True,
            )
        if args.long_requests:
            long_form(url, long_payloads(args.long_requests))
    finally:
        local.shutdown()
    print(f"served@16 / bare per request = {served[16] / bare:5.2f}  (target >= 0.8)")
    print(f"served@16 / bare joined      = {served[16] / joined:5.2f}")
    print(f"served@16 / served@1 = {served[16] / served[1]:5.2f}  (target >= 2.0)")


def engine_threads(url: str, model: str) -> int:
    """What the engine replica reports it runs with (`theo_engine_threads`)."""
    import httpx

    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("theo_engine_threads") and f'model="{model}"' in line:
            return round(float(line.split()[-1]))
    raise RuntimeError("the service reports no theo_engine_threads")


def long_form(url: str, payloads: list[tuple[bytes, float]]) -> None:
    """Long files with and without context at 1, 4 and 16 clients."""
    seconds = sum(d for _, d in payloads)
    print(f"long files: {len(payloads)} of {seconds / len(payloads):.0f} s on average", flush=True)
    for clients in (1, 4, 16):
        rates = {}
        for context in ("true", "false"):
            rates[context] = served_throughput(
                url, payloads, clients, condition_on_previous_text=context
            )
            print(
                f"long, context {'on ' if context == 'true' else 'off'}, {clients:2d} clients: "
                f"{rates[context]:7.2f} audio-s/s",
                flush=True,
            )
        ratio = rates["true"] / rates["false"]
        print(f"long, {clients:2d} clients: context on / off = {ratio:5.2f}")


if __name__ == "__main__":
    main()
