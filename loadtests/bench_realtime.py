"""Realtime streaming capacity: N concurrent WebSocket sessions paced at real time.

Starts Theo (whisper-tiny.en only) on a private local Ray, then for each N in --sessions runs N
sessions at once, each streaming the shared English clips in a loop (1.5 s of silence between
clips, staggered starts) at real time in 100 ms PCM16 frames for --seconds of audio. Prints per N:

- first-partial latency: speech start sent -> first `transcript.partial` of that utterance;
- final latency: end of the utterance's speech audio sent -> `transcript.final` (this includes
  the VAD's silence timeout, `silence_timeout_ms`, which must pass before speech has ended);
- after endpoint: the audio where speech end was detected sent -> `transcript.final`;
- frames dropped, the WER of the finals, the mean engine batch size (from /metrics), and the
  server's CPU seconds per second of audio (a figure other load on the machine does not skew);

and the largest N sustained: no dropped frames and final p95 <= 1.5 s.

    .venv/bin/python loadtests/bench_realtime.py [--sessions 1,2,4,6,8,10,12] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jiwer
import numpy as np

from cli.realtime_client import RealtimeClient, StreamRecord, realtime_url
from serve.audio import decode_audio_bytes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "audio"
CLIPS = ["jfk.wav", "6930-75918-0000.wav", "7902-96591-0000.wav"]
MODEL = "whisper-tiny.en"
GAP_S = 1.5
FINAL_P95_LIMIT_S = 1.5


@dataclass
class Program:
    audio: np.ndarray
    reference: str


@dataclass
class RunStats:
    sessions: int
    first_partial: list[float] = field(default_factory=list)
    final: list[float] = field(default_factory=list)
    after_endpoint: list[float] = field(default_factory=list)
    dropped_ms: int = 0
    rate_limited: int = 0
    references: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    batch_size: float = 0.0
    cpu_per_audio_s: float = 0.0
    """Server CPU seconds per second of streamed audio (all sessions)."""
    load: float = 0.0

    @property
    def wer(self) -> float:
        norm = [normalize(r) for r in self.references], [normalize(h) for h in self.hypotheses]
        return float(jiwer.wer(*norm))

    @property
    def sustained(self) -> bool:
        return self.dropped_ms == 0 and bool(self.final) and p(self.final, 95) <= FINAL_P95_LIMIT_S


def normalize(text: str) -> str:
    text = text.lower().replace("i'm", "i am")
    return " ".join(re.sub(r"[^\w\s']", " ", text).split())


def p(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return float(np.percentile(values, q))


def load_clips(audio_dir: Path) -> list[tuple[np.ndarray, str]]:
    rows = (audio_dir / "manifest.tsv").read_text(encoding="utf-8").splitlines()[1:]
    texts = {row.split("\t")[0]: row.split("\t")[4] for row in rows}
    return [(decode_audio_bytes((audio_dir / name).read_bytes()), texts[name]) for name in CLIPS]


def program(clips: list[tuple[np.ndarray, str]], index: int, seconds: float) -> Program:
    """Clips in a loop, starting at a different clip and offset for each session."""
    gap = np.zeros(round(GAP_S * 16_000), dtype=np.float32)
    parts = [np.zeros(round((0.3 + 0.37 * index % 2.0) * 16_000), dtype=np.float32)]
    texts = []
    k = index
    while sum(len(x) for x in parts) < seconds * 16_000:
        audio, text = clips[k % len(clips)]
        parts += [audio, gap]
        texts.append(text)
        k += 1
    return Program(np.concatenate(parts), " ".join(texts))


def measure(record: StreamRecord, silence_timeout_ms: int, stats: RunStats) -> None:
    received = record.received
    open_start: float | None = None
    partial_seen = False
    for i, item in enumerate(received):
        event = item.event
        if event["type"] == "vad.speech_start":
            open_start, partial_seen = record.sent_time(event["timestamp_ms"]), False
        elif event["type"] == "transcript.partial" and open_start is not None and not partial_seen:
            stats.first_partial.append(item.at - open_start)
            partial_seen = True
        elif event["type"] == "transcript.final":
            end = next(
                (r.event for r in received[i + 1 : i + 3] if r.event["type"] == "vad.speech_end"),
                None,
            )
            if end is not None:
                detected = end["timestamp_ms"]
                stats.final.append(item.at - record.sent_time(detected - silence_timeout_ms))
                stats.after_endpoint.append(item.at - record.sent_time(detected))
        elif event["type"] == "session.frames_dropped":
            stats.dropped_ms += int(event["dropped_ms"])
        elif event["type"] == "session.rate_limit":
            stats.rate_limited += 1


async def one_session(
    url: str, plan: Program, stats: RunStats, silence_timeout_ms: int | None
) -> None:
    async with RealtimeClient(url) as client:
        config = (await client.wait_for("session.created"))["config"]
        if silence_timeout_ms is not None:
            await client.send_json(
                {"type": "session.configure", "silence_timeout_ms": silence_timeout_ms}
            )
            config = (await client.wait_for("session.updated"))["config"]
        await client.stream(plan.audio, speed=1.0)
        await client.close_session(timeout=120)
    measure(client.record, config["silence_timeout_ms"], stats)
    stats.references.append(plan.reference)
    stats.hypotheses.append(
        " ".join(e["text"] for e in client.record.events if e["type"] == "transcript.final")
    )


SERVER_PROCESSES = ("ray::ServeReplica:theo:", "ray::ProxyActor")


def server_cpu_seconds() -> float:
    """CPU time (user + system) used so far by this run's Serve replicas and HTTP proxy (the
    descendants of this process, from Linux /proc): unlike latency, other load on the
    machine does not inflate it."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
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
            cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    me = os.getpid()

    def mine(pid: int) -> bool:
        while pid > 1:
            if pid == me:
                return True
            pid = parents.get(pid, 0)
        return False

    return sum(seconds for pid, seconds in cpu.items() if mine(pid))


def batch_totals(base_url: str) -> tuple[float, float]:
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("theo_batch_size_sum") and MODEL in line:
            total += float(line.split()[-1])
        elif line.startswith("theo_batch_size_count") and MODEL in line:
            count += float(line.split()[-1])
    return total, count


async def run_level(
    base_url: str,
    clips: list[tuple[np.ndarray, str]],
    sessions: int,
    seconds: float,
    silence_timeout_ms: int | None = None,
) -> RunStats:
    stats = RunStats(sessions)
    url = realtime_url(base_url, model=MODEL, language="en")
    plans = [program(clips, i, seconds) for i in range(sessions)]
    before = await asyncio.to_thread(batch_totals, base_url)
    cpu_before = server_cpu_seconds()
    await asyncio.gather(*(one_session(url, plan, stats, silence_timeout_ms) for plan in plans))
    stats.cpu_per_audio_s = (server_cpu_seconds() - cpu_before) / sum(
        len(plan.audio) / 16_000 for plan in plans
    )
    stats.load = os.getloadavg()[0]
    after = await asyncio.to_thread(batch_totals, base_url)
    windows = after[1] - before[1]
    stats.batch_size = (after[0] - before[0]) / windows if windows else 0.0
    return stats


def report(stats: RunStats) -> None:
    def ms(values: list[float], q: int) -> str:
        return f"{p(values, q) * 1000:6.0f}"

    print(
        f"{stats.sessions:4d} | {len(stats.final):5d} | {ms(stats.first_partial, 50)} "
        f"{ms(stats.first_partial, 95)} | {ms(stats.final, 50)} {ms(stats.final, 95)} | "
        f"{ms(stats.after_endpoint, 50)} {ms(stats.after_endpoint, 95)} | "
        f"{stats.dropped_ms:7d} | {stats.wer:5.3f} | {stats.batch_size:5.2f} | "
        f"{stats.cpu_per_audio_s:5.3f} | {stats.load:5.1f} | {'yes' if stats.sustained else 'no'}",
        flush=True,
    )


async def sweep(base_url: str, args: argparse.Namespace) -> None:
    clips = load_clips(args.audio_dir)
    await run_level(base_url, clips, 1, 8.0)  # warm up
    print(
        "   N | finals | first partial ms | final ms (speech end) | after endpoint ms | "
        "dropped | WER   | batch | cpu/s | load  | sustained"
    )
    print("     |        |    p50    p95    |     p50    p95        |    p50    p95     |")
    best = 0
    for sessions in args.sessions:
        stats = await run_level(base_url, clips, sessions, args.seconds, args.silence_timeout_ms)
        report(stats)
        if stats.sustained:
            best = max(best, sessions)
        elif not args.keep_going:
            break
    print(f"largest N sustained (no dropped frames, final p95 <= {FINAL_P95_LIMIT_S} s): {best}")
    print(
        "cpu/s: server CPU seconds per second of streamed audio; load: 1-minute load average "
        f"of this machine ({os.cpu_count()} CPUs) after the level"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audio-dir", type=Path, default=SHARED)
    parser.add_argument(
        "--sessions", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 6, 8, 10, 12]
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per session per level")
    parser.add_argument("--threads", type=int, default=2, help="engine cpu_threads")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--max-partials", type=int, help="THEO_REALTIME__MAX_CONCURRENT_PARTIALS for this run"
    )
    parser.add_argument(
        "--partial-interval-ms", type=int, help="THEO_REALTIME__PARTIAL_INTERVAL_MS for this run"
    )
    parser.add_argument(
        "--silence-timeout-ms", type=int, help="session.configure the endpointing silence"
    )
    parser.add_argument("--url", help="use a running Theo instead of starting one")
    parser.add_argument("--keep-going", action="store_true", help="run every level")
    args = parser.parse_args()
    if args.max_partials:
        os.environ["THEO_REALTIME__MAX_CONCURRENT_PARTIALS"] = str(args.max_partials)
    if args.partial_interval_ms:
        os.environ["THEO_REALTIME__PARTIAL_INTERVAL_MS"] = str(args.partial_interval_ms)
    if args.url:
        asyncio.run(sweep(args.url, args))
        return

    # Ray starts workers at nice 15; the replicas measured here should compete with the
    # clients (and anything else on the machine) at normal priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    from engines.bundled import install_tiny_en
    from serve import local
    from serve.settings import TheoSettings

    models_dir = Path(tempfile.mkdtemp(prefix="theo-bench-models-"))
    install_tiny_en(models_dir)
    port = local.free_port()
    settings = TheoSettings(
        port=port,
        models_dir=models_dir,
        models=[MODEL],
        whisper={
            "max_batch_size": args.batch_size,
            "batch_wait_timeout_s": 0.02,
            "cpu_threads": args.threads,
        },
        gateway={"num_cpus": 0.1},
    )
    local.start_local_ray(settings=settings)
    try:
        local.deploy(settings)
        asyncio.run(sweep(f"http://127.0.0.1:{port}", args))
    finally:
        local.shutdown()


if __name__ == "__main__":
    main()
