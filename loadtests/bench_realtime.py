"""Realtime capacity and latency of Theo's Whisper sessions, with issue 14's targets.

Starts Theo (whisper-tiny.en int8 only) on a private local Ray (or uses `--url`), then:

1. for each N in --sessions, N concurrent WebSocket sessions (native protocol), each
   streaming the shared English clips in a loop (1.5 s of silence between clips, staggered
   starts) at real time in 100 ms PCM16 frames for --seconds of audio;
2. one session of continuous speech (--lecture-seconds of espeak-ng sentences with pauses of
   0.25-0.35 s, shorter than the VAD's silence timeout), with early commits on (the default)
   and off (what a final waited for before: a 0.5 s pause or the 20 s cut);
3. the same clips through REST, for the streaming WER = REST WER check;

and prints one table, then every target of issue 14 next to the figure this run measured.

Definitions (client clock; "sent" = when the audio at that stream position had been sent):
- first text: speech start (the `vad.speech_start` position) sent -> first partial with text
  (or the final) of that utterance;
- final: speech end sent (the `vad.speech_end` position less the silence timeout) -> the final
  of the segment the VAD closed;
- lag: for every stream position p on a 0.5 s grid, p sent -> the first event covering p (a
  partial's `timestamp_ms`, a final's `end_ms`); committed lag: finals only. Trend: median lag
  of the last third of the grid less that of the first third;
- kept up: lag p95 <= 5 s, trend <= 2 s and the session closed properly;
- update gap: while an utterance is open, the time between its consecutive text updates
  (speech start sent -> first partial -> ... -> final); per session its p95;
- engine CPU: CPU time of the engine replica process per wall second (100 % = one core).

    .venv/bin/python loadtests/bench_realtime.py [--sessions 1,4,8] [--seconds 30]
        [--lecture-seconds 60] [--threads 0] [--url http://...]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jiwer
import numpy as np
from process_cpu import serve_cpu_seconds

from cli.realtime_client import RealtimeClient, StreamRecord, realtime_url
from serve.audio import decode_audio_bytes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "audio"
CLIPS = ["jfk.wav", "6930-75918-0000.wav", "7902-96591-0000.wav"]
MODEL = "whisper-tiny.en"
GAP_S = 1.5
GRID_S = 0.5
RATE = 16_000

FIRST_TEXT_S = 0.9
KEPT_UP_LAG_S = 5.0
KEPT_UP_TREND_S = 2.0
N8_LAG_S = 8.0
N8_GAP_S = 3.0
COMMITTED_LAG_S = 6.0


@dataclass
class Program:
    audio: np.ndarray
    reference: str


@dataclass
class Session:
    record: StreamRecord
    silence_timeout_ms: int
    reference: str
    closed: bool

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.record.events

    @property
    def text(self) -> str:
        return " ".join(e["text"] for e in self.events if e["type"] == "transcript.final")


@dataclass
class Level:
    name: str
    sessions: list[Session] = field(default_factory=list)
    wall_s: float = 0.0
    engine_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    batch_size: float = 0.0

    @property
    def first_text(self) -> list[float]:
        return [x for s in self.sessions for x in first_texts(s)]

    @property
    def finals(self) -> list[float]:
        return [x for s in self.sessions for x in final_latencies(s)]

    def lags(self, committed: bool) -> list[float]:
        return [x for s in self.sessions for x in lag_series(s, committed)]

    @property
    def kept_up(self) -> int:
        return sum(kept_up(s) for s in self.sessions)

    @property
    def worst_gap_p95(self) -> float:
        return max((p(update_gaps(s), 95) for s in self.sessions), default=float("nan"))

    @property
    def max_gap(self) -> float:
        return max((max(update_gaps(s), default=0.0) for s in self.sessions), default=0.0)

    @property
    def dropped_ms(self) -> int:
        return sum(
            int(e["dropped_ms"])
            for s in self.sessions
            for e in s.events
            if e["type"] == "session.frames_dropped"
        )

    @property
    def wer(self) -> float:
        return wer([s.reference for s in self.sessions], [s.text for s in self.sessions])

    @property
    def engine_cpu_percent(self) -> float:
        return 100 * self.engine_cpu_s / self.wall_s if self.wall_s else 0.0

    def cpu_percent(self, seconds: float) -> float:
        return 100 * seconds / self.wall_s if self.wall_s else 0.0


# -- metrics (pure) ------------------------------------------------------------------------------
def normalize(text: str) -> str:
    text = text.lower().replace("i'm", "i am")
    return " ".join(re.sub(r"[^\w\s']", " ", text).split())


def wer(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.wer([normalize(r) for r in references], [normalize(h) for h in hypotheses]))


def p(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q))


@dataclass
class Utterance:
    start_ms: int
    """Its `vad.speech_start` position."""
    end_ms: int | None = None
    """Its `vad.speech_end` position (where the end was detected)."""
    updates: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    """(arrival, event) of the partials with text and finals that cover its audio."""


def utterances(session: Session) -> list[Utterance]:
    """The session's utterances by VAD events, each with the text events covering its audio
    (a partial's `timestamp_ms`, a final's `end_ms` after its start and before the next)."""
    found: list[Utterance] = []
    for item in session.record.received:
        e = item.event
        if e["type"] == "vad.speech_start":
            found.append(Utterance(e["timestamp_ms"]))
        elif e["type"] == "vad.speech_end" and found:
            found[-1].end_ms = e["timestamp_ms"]
    for item in session.record.received:
        e = item.event
        if e["type"] == "transcript.partial" and e["text"]:
            covered = e["timestamp_ms"]
        elif e["type"] == "transcript.final" and e["text"]:
            covered = e["end_ms"]
        else:
            continue
        for k, utterance in enumerate(found):
            following = found[k + 1].start_ms if k + 1 < len(found) else None
            if covered > utterance.start_ms and (following is None or covered <= following):
                utterance.updates.append((item.at, e))
                break
    return found


def first_texts(session: Session) -> list[float]:
    """Per utterance: its speech start sent -> its first partial with text (or final)."""
    sent = session.record.sent_time
    return [u.updates[0][0] - sent(u.start_ms) for u in utterances(session) if u.updates]


def final_latencies(session: Session) -> list[float]:
    """Per utterance the VAD ended: speech end sent -> its last final."""
    sent = session.record.sent_time
    out = []
    for u in utterances(session):
        finals = [at for at, e in u.updates if e["type"] == "transcript.final"]
        if u.end_ms is not None and finals:
            out.append(finals[-1] - sent(u.end_ms - session.silence_timeout_ms))
    return out


def update_gaps(session: Session) -> list[float]:
    """Per utterance: speech start sent -> first text update -> ... -> its last final."""
    sent = session.record.sent_time
    gaps: list[float] = []
    for u in utterances(session):
        times = [sent(u.start_ms)] + [at for at, _ in u.updates]
        gaps += [b - a for a, b in itertools.pairwise(times)]
    return gaps


def coverage(session: Session, committed: bool) -> list[tuple[float, float]]:
    """(arrival, stream seconds covered so far) each time the coverage grows."""
    best, out = 0.0, []
    for item in session.record.received:
        e = item.event
        if e["type"] == "transcript.final" and e["text"]:
            covered = e["end_ms"] / 1000
        elif e["type"] == "transcript.partial" and e["text"] and not committed:
            covered = e["timestamp_ms"] / 1000
        else:
            continue
        if covered > best:
            best = covered
            out.append((item.at, best))
    return out


def lag_series(session: Session, committed: bool) -> list[float]:
    covered = coverage(session, committed)
    if not covered:
        return []
    lags, j, position = [], 0, GRID_S
    while position <= covered[-1][1] + 1e-9:
        while covered[j][1] < position - 1e-9:
            j += 1
        lags.append(covered[j][0] - session.record.sent_time(round(position * 1000)))
        position += GRID_S
    return lags


def lag_trend(session: Session) -> float:
    lags = lag_series(session, committed=False)
    k = len(lags) // 3
    if k < 2:
        return 0.0
    return float(np.median(lags[-k:]) - np.median(lags[:k]))


def kept_up(session: Session) -> bool:
    lags = lag_series(session, committed=False)
    return (
        bool(lags)
        and p(lags, 95) <= KEPT_UP_LAG_S
        and lag_trend(session) <= KEPT_UP_TREND_S
        and session.closed
    )


# -- streams -------------------------------------------------------------------------------------
def load_clips(audio_dir: Path) -> list[tuple[np.ndarray, str]]:
    rows = (audio_dir / "manifest.tsv").read_text(encoding="utf-8").splitlines()[1:]
    texts = {row.split("\t")[0]: row.split("\t")[4] for row in rows}
    return [(decode_audio_bytes((audio_dir / name).read_bytes()), texts[name]) for name in CLIPS]


def program(clips: list[tuple[np.ndarray, str]], index: int, seconds: float) -> Program:
    """Clips in a loop, starting at a different clip and offset for each session."""
    gap = np.zeros(round(GAP_S * RATE), dtype=np.float32)
    parts = [np.zeros(round((0.3 + 0.37 * index % 2.0) * RATE), dtype=np.float32)]
    texts = []
    k = index
    while sum(len(x) for x in parts) < seconds * RATE:
        audio, text = clips[k % len(clips)]
        parts += [audio, gap]
        texts.append(text)
        k += 1
    return Program(np.concatenate(parts), " ".join(texts))


def lecture(seconds: float) -> Program:
    """Continuous speech: espeak-ng sentences (`tests/speech.py`) with its trailing silence cut
    and pauses of 0.25-0.4 s between them, which the VAD (silence timeout 0.5 s) does not take
    for the end of speech: without early commits a final waits for the 20 s cut."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.speech import SENTENCES, speak

    rng = np.random.default_rng(14)
    parts: list[np.ndarray] = [np.zeros(RATE // 2, dtype=np.float32)]
    said: list[str] = []
    for i in rng.permutation(len(SENTENCES)):
        if sum(len(x) for x in parts) >= seconds * RATE:
            break
        audio = speak(SENTENCES[i])
        voiced = np.nonzero(np.abs(audio) > 0.01)[0]
        audio = audio[voiced[0] : voiced[-1] + RATE // 20]
        pause = np.zeros(round(rng.uniform(0.25, 0.4) * RATE), dtype=np.float32)
        parts += [audio, pause]
        said.append(SENTENCES[i])
    parts.append(np.zeros(RATE, dtype=np.float32))
    return Program(np.concatenate(parts).astype(np.float32), " ".join(said))


async def one_session(url: str, plan: Program, configure: dict[str, Any]) -> Session:
    async with RealtimeClient(url) as client:
        await client.wait_for("session.created")
        await client.send_json({"type": "session.configure", "enable_itn": False, **configure})
        config = (await client.wait_for("session.updated"))["config"]
        await client.stream(plan.audio, speed=1.0)
        try:
            await client.close_session(timeout=120)
            closed = True
        except TimeoutError:
            closed = False
    return Session(client.record, config["silence_timeout_ms"], plan.reference, closed)


# -- the server's CPU --------------------------------------------------------------------------
ENGINE_PROCESS = "ray::ServeReplica:theo:whisper-"


def cpu_seconds() -> tuple[float, float]:
    """(engine replica, every Serve replica and proxy) CPU seconds so far."""
    return serve_cpu_seconds(ENGINE_PROCESS)


def client_cpu_seconds() -> float:
    """This process (the benchmark's clients)."""
    times = os.times()
    return times.user + times.system


def scrape(base_url: str) -> str:
    return httpx.get(f"{base_url}/metrics", timeout=30).text


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and f'model="{MODEL}"' in line:
            total += float(line.split()[-1])
    return total


async def run_level(
    name: str, base_url: str, plans: list[Program], configure: dict[str, Any] | None = None
) -> Level:
    level = Level(name)
    url = realtime_url(base_url, model=MODEL, language="en")
    before = await asyncio.to_thread(scrape, base_url)
    engine_before, server_before = cpu_seconds()
    client_before = client_cpu_seconds()
    started = time.monotonic()
    level.sessions = list(
        await asyncio.gather(*(one_session(url, plan, configure or {}) for plan in plans))
    )
    level.wall_s = time.monotonic() - started
    engine_after, server_after = cpu_seconds()
    level.engine_cpu_s = engine_after - engine_before
    level.server_cpu_s = server_after - server_before
    level.client_cpu_s = client_cpu_seconds() - client_before
    after = await asyncio.to_thread(scrape, base_url)
    windows = metric(after, "theo_batch_size_count") - metric(before, "theo_batch_size_count")
    total = metric(after, "theo_batch_size_sum") - metric(before, "theo_batch_size_sum")
    level.batch_size = total / windows if windows else 0.0
    return level


def rest_wer(base_url: str, audio_dir: Path, clips: list[tuple[np.ndarray, str]]) -> float:
    hypotheses = []
    for name in CLIPS:
        response = httpx.post(
            f"{base_url}/v1/audio/transcriptions",
            files={"file": (name, (audio_dir / name).read_bytes())},
            data={"model": MODEL, "language": "en"},
            timeout=300,
        )
        response.raise_for_status()
        hypotheses.append(response.json()["text"])
    return wer([text for _, text in clips], hypotheses)


# -- report ----------------------------------------------------------------------------------
def row(level: Level) -> str:
    def ms(values: list[float], q: int) -> str:
        return f"{p(values, q) * 1000:6.0f}"

    lags, committed = level.lags(False), level.lags(True)
    finals = sum(1 for s in level.sessions for e in s.events if e["type"] == "transcript.final")
    return (
        f"{level.name:>9} | {finals:4d} | {ms(level.first_text, 50)} {ms(level.first_text, 95)} | "
        f"{ms(level.finals, 50)} {ms(level.finals, 95)} | {ms(lags, 50)} {ms(lags, 95)} | "
        f"{ms(committed, 50)} {ms(committed, 95)} | {level.worst_gap_p95:5.1f} "
        f"{level.max_gap:5.1f} | {level.kept_up:2d}/{len(level.sessions):<2d} | "
        f"{level.dropped_ms:5d} | {level.wer:5.3f} | {level.batch_size:4.1f} | "
        f"{level.engine_cpu_percent:4.0f}% "
        f"{level.cpu_percent(level.server_cpu_s - level.engine_cpu_s):4.0f}% "
        f"{level.cpu_percent(level.client_cpu_s):4.0f}%"
    )


HEADER = (
    "    level | fin. | first text ms | final ms      | lag ms        | committed lag | "
    "gap s p95/max | kept | drop  | WER   | batch | CPU: engine, rest of\n"
    "          |      |   p50    p95  |   p50    p95  |   p50    p95  |   p50    p95  | "
    "(worst sess.) | up   | ms    |       |       | Theo, clients"
)


@dataclass
class Target:
    what: str
    measured: str
    ok: bool | None
    """None: not measured in this run."""


def targets(
    levels: dict[int, Level],
    lecture_on: Level | None,
    lecture_off: Level | None,
    rest: float | None,
    threads: int,
    cpus: int,
) -> list[Target]:
    out = [
        Target(
            "1. engine threads = the CPUs it is given (local run: the machine's)",
            f"{threads} threads, {cpus} CPUs",
            threads == cpus,
        )
    ]
    busy = [levels[n] for n in (4, 8) if n in levels]
    if busy:
        used = ", ".join(f"N={len(lv.sessions)} {lv.engine_cpu_percent:.0f}%" for lv in busy)
        out.append(
            Target(
                "1. engine replica uses more than one core under load (N=4, 8)",
                used,
                all(lv.engine_cpu_percent > 100 for lv in busy),
            )
        )
    one = levels.get(1)
    if one is not None:
        first = p(one.first_text, 50)
        out.append(
            Target(
                f"2. first text median <= {FIRST_TEXT_S} s (one session)",
                f"{first:.2f} s",
                first <= FIRST_TEXT_S,
            )
        )
    four = levels.get(4)
    if four is not None:
        lags = four.lags(False)
        out.append(
            Target(
                f"3. N=4: all kept up (lag p95 <= {KEPT_UP_LAG_S:.0f} s, trend <= "
                f"{KEPT_UP_TREND_S:.0f} s, closed)",
                f"{four.kept_up}/4 (lag p95 {p(lags, 95):.1f} s)",
                four.kept_up == len(four.sessions),
            )
        )
    eight = levels.get(8)
    if eight is not None:
        lags = eight.lags(False)
        out.append(
            Target(f"3. N=8: lag p95 <= {N8_LAG_S:.0f} s", f"{p(lags, 95):.1f} s", p(lags, 95) <= 8)
        )
        out.append(
            Target(
                f"3. N=8: a partial at least every {N8_GAP_S:.0f} s per session "
                "(worst session's p95 update gap)",
                f"{eight.worst_gap_p95:.1f} s (longest gap {eight.max_gap:.1f} s)",
                eight.worst_gap_p95 <= N8_GAP_S,
            )
        )
        if one is not None:
            out.append(
                Target(
                    "3. N=8: WER unchanged (<= N=1 + 0.01)",
                    f"{eight.wer:.3f} vs {one.wer:.3f}",
                    eight.wer <= one.wer + 0.01,
                )
            )
    if lecture_on is not None:
        committed = p(lecture_on.lags(True), 95)
        out.append(
            Target(
                f"4. committed lag p95 <= {COMMITTED_LAG_S:.0f} s, one session of continuous "
                "speech",
                f"{committed:.1f} s (without early commits "
                f"{p(lecture_off.lags(True), 95) if lecture_off else float('nan'):.1f} s)",
                committed <= COMMITTED_LAG_S,
            )
        )
        if lecture_off is not None:
            out.append(
                Target(
                    "4. its WER not worse than without early commits (+0.01)",
                    f"{lecture_on.wer:.3f} vs {lecture_off.wer:.3f}",
                    lecture_on.wer <= lecture_off.wer + 0.01,
                )
            )
    if rest is not None and one is not None:
        out.append(
            Target(
                "kept: streaming WER (N=1) = REST WER on the same clips (+-0.01)",
                f"{one.wer:.3f} vs {rest:.3f}",
                abs(one.wer - rest) <= 0.01,
            )
        )
    return out


def print_targets(rows: list[Target]) -> None:
    print("\ntargets (issue 14), this run:")
    for t in rows:
        verdict = "n/a " if t.ok is None else ("PASS" if t.ok else "FAIL")
        print(f"  [{verdict}] {t.what}: {t.measured}")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


async def sweep(base_url: str, args: argparse.Namespace) -> None:
    clips = load_clips(args.audio_dir)
    cpus = len(os.sched_getaffinity(0))
    metrics = await asyncio.to_thread(scrape, base_url)
    threads = round(metric(metrics, "theo_engine_threads"))
    print(
        f"whisper-tiny.en int8, {MODEL} engine threads: {threads} (theo_engine_threads); "
        f"machine: {cpus} CPUs; load average (1/5/15 min) at start: {load()}",
        flush=True,
    )
    await run_level("warm-up", base_url, [program(clips, 0, 8.0)])
    print(HEADER, flush=True)
    levels: dict[int, Level] = {}
    for n in args.sessions:
        level = await run_level(
            f"N={n}", base_url, [program(clips, i, args.seconds) for i in range(n)]
        )
        levels[n] = level
        print(row(level), flush=True)
    on = off = None
    if args.lecture_seconds > 0:
        speech = lecture(args.lecture_seconds)
        on = await run_level("lecture", base_url, [speech])
        print(row(on), flush=True)
        off = await run_level(
            "no-commit",
            base_url,
            [speech],
            {"commit_sentences": False, "commit_after_words": 0},
        )
        print(row(off), flush=True)
    rest = await asyncio.to_thread(rest_wer, base_url, args.audio_dir, clips)
    if on is not None:
        print(
            f"lecture: {len(speech.audio) / RATE:.0f} s of continuous espeak-ng speech, one "
            "session; no-commit: the same with early commits off"
        )
    print(f"REST WER on the same clips: {rest:.3f}")
    print_targets(targets(levels, on, off, rest, threads, cpus))
    print(f"load average (1/5/15 min) at end: {load()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audio-dir", type=Path, default=SHARED)
    parser.add_argument(
        "--sessions", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8]
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per session per level")
    parser.add_argument(
        "--lecture-seconds", type=float, default=60.0, help="continuous speech (0: skip)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="engine cpu_threads (0: the machine's CPUs)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--url", help="use a running Theo instead of starting one")
    args = parser.parse_args(argv)
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
