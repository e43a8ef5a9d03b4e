"""Why batch composition could change a Whisper answer, measured in-process (no Ray).

Four experiments on one model (docs/ARCHITECTURE.md, "Batch invariance", has the results):

1. numeric: the encoder output of a window alone vs as row 0 of a batch of 8, and the
   beam-search result of each window alone vs in a batch of 8 at temperature 0;
2. sampling: one window decoded three times alone at temperature 1.0 (the fallback ladder's
   sampled decodes) - CTranslate2 draws from one random stream per thread that
   `set_random_seed` does not rewind, so a sampled decode is not reproducible, alone or not;
3. word timings: faster-whisper's `add_word_timestamps` given [other window, this window] vs
   [this window] - it carries the last word end from one window of its list to the next;
4. end to end: a clean set of requests (short clips and long files) and noisy copies that make
   windows fall back to sampling, each request alone, then 8 at a time through a batcher like
   the deployment's (up to 8 windows, 50 ms wait): how many texts stay the same, and whether
   every one that changed had a sampled window.

    .venv/bin/python loadtests/batch_invariance.py [--model whisper-tiny.en] [--clips 40]
        [--noisy 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.base import SAMPLE_RATE, Audio, TranscribeOptions, TranscriptionResult
from engines.whisper.backend import WhisperBackend
from engines.whisper.context import decode_windows
from engines.whisper.jobs import WindowJob, WindowOutput
from tests.speech import MENU, SENTENCES, VOICES, long_file, speak


@dataclass
class Batcher:
    """Windows of concurrent requests gathered into batches, like `@serve.batch`."""

    backend: WhisperBackend
    max_batch: int = 8
    wait_s: float = 0.05
    queue: list[tuple[WindowJob, asyncio.Future[WindowOutput]]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    _runner: asyncio.Task[None] | None = None

    async def decode(self, job: WindowJob) -> WindowOutput:
        future: asyncio.Future[WindowOutput] = asyncio.get_running_loop().create_future()
        self.queue.append((job, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self.queue:
            await asyncio.sleep(self.wait_s)
            batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
            outputs = await asyncio.to_thread(self.backend.decode_batch, [j for j, _ in batch])
            self.sizes.append(len(batch))
            for (_, future), output in zip(batch, outputs, strict=True):
                future.set_result(output)


async def transcribe(
    backend: WhisperBackend,
    audio: Audio,
    options: TranscribeOptions,
    decode: Callable[[WindowJob], Awaitable[WindowOutput]],
) -> TranscriptionResult:
    jobs = await asyncio.to_thread(backend.prepare, audio, options)
    outputs = [
        out
        async for out in decode_windows(
            jobs,
            decode,
            backend.prompt_history(options),
            condition_on_previous_text=options.condition_on_previous_text,
        )
    ]
    return backend.assemble(len(audio) / SAMPLE_RATE, options, outputs)


Request = tuple[str, Audio, TranscribeOptions]


def request_sets(clips: int, noisy_count: int) -> tuple[list[Request], list[Request]]:
    """A clean set (espeak sentences, one window each, and 8 long files of 3-5 windows; half
    with word timings) and noisy copies of the first clips at -6 dB SNR, which make windows
    fall back to sampled temperatures."""
    rng = np.random.default_rng(0)
    texts = list(SENTENCES + MENU)
    plain = TranscribeOptions(language="en")
    words = TranscribeOptions(language="en", word_timestamps=True)
    clean: list[Request] = []
    for i in range(clips):
        audio = speak(texts[i % len(texts)], VOICES[i % len(VOICES)], 150 + 10 * (i % 4))
        clean.append((f"clip{i}", audio, words if i % 2 else plain))
    for seed in range(8):
        speech = long_file(100 + seed, 0.8 + 0.15 * seed, VOICES[seed % len(VOICES)])
        clean.append((f"long{seed}", speech.audio, words if seed % 2 else plain))
    noisy: list[Request] = []
    for name, audio, options in clean[:noisy_count]:
        noise = rng.normal(0, 2 * float(np.std(audio)), len(audio)).astype(np.float32)
        noisy.append((f"noisy-{name}", audio + noise, options))
    return clean, noisy


def numeric(backend: WhisperBackend, audios: list[Audio]) -> None:
    import ctranslate2

    model = backend._model
    jobs = [backend.prepare(a, TranscribeOptions(language="en"))[0] for a in audios[:8]]
    features = np.stack([j.features for j in jobs])
    alone = np.asarray(model.encode(features[:1]))[0]
    batched_all = model.encode(features)
    batched = np.asarray(batched_all)[0]
    print(f"1. encoder row alone vs in a batch of 8: max |diff| = {np.abs(alone - batched).max()}")
    tokenizer = backend._tokenizer("transcribe", "en")
    prompt = model.get_prompt(tokenizer, [], without_timestamps=False)
    together = model.model.generate(batched_all, [prompt] * len(jobs), beam_size=5)
    host = np.asarray(batched_all)
    same = 0
    for i in range(len(jobs)):
        row = ctranslate2.StorageView.from_array(np.ascontiguousarray(host[i : i + 1]))
        one = model.model.generate(row, [prompt], beam_size=5)
        same += one[0].sequences_ids[0] == together[i].sequences_ids[0]
    print(f"   beam search at T=0, alone vs in the batch: {same}/{len(jobs)} identical")


def sampling(backend: WhisperBackend, audio: Audio) -> None:
    import ctranslate2

    job = backend.prepare(audio, TranscribeOptions(language="en", temperatures=(1.0,)))[0]
    texts = []
    for _ in range(3):
        ctranslate2.set_random_seed(1234)
        texts.append(backend.decode_batch([job], recover_tails=False)[0].segments[0].text)
    print(f"2. one window sampled 3x alone at T=1.0 (seed reset each time): {len(set(texts))}")
    for text in texts:
        print(f"   {text.strip()}")


def word_leak(backend: WhisperBackend, first: Audio, second: Audio) -> None:
    """A window that starts with a pause, aligned the faster-whisper way (one call for a list
    of windows) after another request's window at 60 s, and alone."""
    from engines.whisper.backend import APPEND_PUNCTUATIONS, N_FRAMES, PREPEND_PUNCTUATIONS

    model = backend._model
    options = TranscribeOptions(language="en")
    pause = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
    other = replace(backend.prepare(first, options)[0], offset=60.0)
    this = backend.prepare(np.concatenate([pause, second]), options)[0]
    outputs = backend.decode_batch([other, this], recover_tails=False)
    tokenizer = backend._tokenizer("transcribe", "en")
    encoded = model.encode(np.stack([other.features, this.features]))
    frames = [min(N_FRAMES, round(j.duration * 100)) for j in (other, this)]

    def subsegments(output: WindowOutput) -> list[dict[str, Any]]:
        return [
            {"tokens": s.tokens, "start": s.start, "end": s.end, "seek": s.seek}
            for s in output.segments
        ]

    def align(windows: list[list[dict[str, Any]]], rows: list[int]) -> list[float]:
        view = encoded if rows == [0, 1] else model.encode(this.features[None])
        model.add_word_timestamps(
            windows,
            tokenizer,
            view,
            [frames[r] for r in rows],
            PREPEND_PUNCTUATIONS,
            APPEND_PUNCTUATIONS,
            0.0,
        )
        return [round(float(w["start"]), 2) for w in windows[-1][0]["words"][:3]]

    batched = align([subsegments(outputs[0]), subsegments(outputs[1])], [0, 1])
    alone = align([subsegments(outputs[1])], [1])
    print("3. first word starts of a window that begins with a 3 s pause, faster-whisper's")
    print(f"   alignment of a list: after another window {batched}, alone {alone}")


async def end_to_end(backend: WhisperBackend, label: str, requests: list[Request]) -> None:
    async def alone_decode(job: WindowJob) -> WindowOutput:
        return (await asyncio.to_thread(backend.decode_batch, [job]))[0]

    started = time.perf_counter()
    alone = [await transcribe(backend, a, o, alone_decode) for _, a, o in requests]
    alone_s = time.perf_counter() - started
    batcher = Batcher(backend)
    started = time.perf_counter()
    together: list[TranscriptionResult] = []
    for i in range(0, len(requests), 8):
        group = requests[i : i + 8]
        together += await asyncio.gather(
            *(transcribe(backend, a, o, batcher.decode) for _, a, o in group)
        )
    together_s = time.perf_counter() - started
    same = 0
    unexplained = []
    sampled_requests = 0
    for (name, _, _), a, b in zip(requests, alone, together, strict=True):
        sampled = any(s.temperature > 0 for s in a.segments + b.segments)
        sampled_requests += sampled
        if a.text == b.text:
            same += 1
        elif not sampled:
            unexplained.append((name, a.text, b.text))
    windows = sum(batcher.sizes)
    print(
        f"4. {label}: {len(requests)} requests, {windows} windows in {len(batcher.sizes)} batches "
        f"(mean {windows / len(batcher.sizes):.1f}): {same}/{len(requests)} "
        f"({same / len(requests):.1%}) same text alone and batched; "
        f"{sampled_requests} requests had a sampled window; "
        f"{len(unexplained)} differ without one"
    )
    for name, a_text, b_text in unexplained:
        print(f"   {name}:\n     alone:   {a_text}\n     batched: {b_text}")
    print(f"   time alone {alone_s:.1f} s, batched {together_s:.1f} s (machine load applies)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--noisy", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from engines.bundled import install_bundled
    from engines.registry import ModelRegistry

    models_dir = Path(tempfile.mkdtemp(prefix="theo-invariance-models-"))
    install_bundled(models_dir)
    manifest = ModelRegistry.scan(models_dir).models[args.model]
    backend = WhisperBackend(manifest, cpu_threads=args.threads)
    backend.load()
    clean, noisy = request_sets(args.clips, args.noisy)
    numeric(backend, [a for _, a, _ in clean])
    sampling(backend, noisy[0][1])
    word_leak(backend, clean[1][1], clean[2][1])
    asyncio.run(end_to_end(backend, "clean", clean))
    asyncio.run(end_to_end(backend, "noisy", noisy))


if __name__ == "__main__":
    main()
