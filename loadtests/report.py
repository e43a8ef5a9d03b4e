# ruff: noqa: E501  (table rows and chart calls read better unbroken)
"""One command for the benchmark report: runs the batch, realtime and (when a WeNet model is
present) CTC benchmarks, and writes `loadtests/results/<date>.md` with PNG charts beside it.

    .venv/bin/python loadtests/report.py [--requests 48] [--sessions 1,2,4,6] [--seconds 20]
                                         [--ctc-sessions 4,8,16] [--out loadtests/results]

- batch (`bench_batch.py`): audio-seconds per second of the bare faster-whisper batched
  pipeline (per request, and all clips joined) vs Theo served at 1, 4 and 16 clients;
- realtime (`bench_realtime.py`): N paced WebSocket sessions; first-partial, final and
  after-endpoint latency percentiles, dropped audio, WER, engine batch size;
- CTC (`bench_ctc.py`, when present): the WeNet engine's per-chunk compute latency and, over
  the service, partial latency of N paced WebSocket sessions on a sticky WeNet replica; skipped
  (and said so) without the benchmark or the `wenet` extra.

Each benchmark starts its own private Ray and runs in its own process; a failing one is
reported with its output and the others still run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
TIMEOUT_S = 1800


@dataclass
class Run:
    name: str
    command: list[str]
    returncode: int = 0
    output: str = ""
    seconds: float = 0.0


@dataclass
class BatchResult:
    bare_per_request: float | None = None
    bare_joined: float | None = None
    served: dict[int, float] = field(default_factory=dict)


@dataclass
class RealtimeRow:
    sessions: int
    finals: int
    first_partial_p50: float
    first_partial_p95: float
    final_p50: float
    final_p95: float
    endpoint_p50: float
    endpoint_p95: float
    dropped_ms: int
    wer: float
    batch: float
    sustained: bool


def run(name: str, command: list[str]) -> Run:
    import time

    print(f"== {name}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
        result = Run(name, command, done.returncode, done.stdout + done.stderr)
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        result = Run(name, command, -1, output + f"\n(timed out after {TIMEOUT_S} s)")
    result.seconds = time.monotonic() - started
    print(f"   exit {result.returncode} in {result.seconds:.0f} s", flush=True)
    return result


def parse_batch(output: str) -> BatchResult:
    result = BatchResult()
    number = r"([0-9.]+) audio-s/s"
    if m := re.search(rf"bare batched pipeline, per request:\s+{number}", output):
        result.bare_per_request = float(m.group(1))
    if m := re.search(rf"bare batched pipeline, clips joined:\s+{number}", output):
        result.bare_joined = float(m.group(1))
    for clients, value in re.findall(rf"served,\s+(\d+) concurrent clients:\s+{number}", output):
        result.served[int(clients)] = float(value)
    return result


MS = r"(\d+|nan)"
REALTIME_ROW = re.compile(
    rf"^\s*(\d+) \|\s+(\d+) \|\s+{MS}\s+{MS} \|\s+{MS}\s+{MS} \|\s+{MS}\s+{MS} \|"
    r"\s+(\d+) \|\s+([0-9.]+|nan) \|\s+([0-9.]+) \|.*\|\s+(yes|no)\s*$",
    re.M,
)


def parse_realtime(output: str) -> list[RealtimeRow]:
    rows = []
    for m in REALTIME_ROW.finditer(output):
        g = m.groups()
        rows.append(
            RealtimeRow(
                int(g[0]),
                int(g[1]),
                *(float(v) for v in g[2:8]),
                int(g[8]),
                float(g[9]),
                float(g[10]),
                g[11] == "yes",
            )
        )
    return rows


@dataclass
class CtcResult:
    engine: list[tuple[int, int, float, float, float]] = field(default_factory=list)
    """(chunk, chunk ms, compute p50 ms, p95 ms, rtf)."""
    service: list[tuple[int, float, float, int, int, int, bool]] = field(default_factory=list)
    """(sessions, partial p50 ms, p95 ms, partials, dropped, errors, sustained)."""


CTC_ENGINE = re.compile(
    r"engine chunk\s+(\d+) \((\d+) ms audio\): compute p50\s+([0-9.]+) ms\s+p95\s+([0-9.]+) ms"
    r"\s+\(rtf ([0-9.]+)\)"
)
CTC_SERVICE = re.compile(
    r"^\s*(\d+) sessions at real time: partial latency p50\s+([0-9.]+|nan) ms\s+p95\s+"
    r"([0-9.]+|nan) ms\s+partials (\d+)\s+dropped (\d+)\s+errors (\d+)\s+(sustained|NOT sustained)",
    re.M,
)


def parse_ctc(output: str) -> CtcResult:
    result = CtcResult()
    for m in CTC_ENGINE.finditer(output):
        g = m.groups()
        result.engine.append((int(g[0]), int(g[1]), float(g[2]), float(g[3]), float(g[4])))
    for m in CTC_SERVICE.finditer(output):
        g = m.groups()
        result.service.append(
            (
                int(g[0]),
                float(g[1]),
                float(g[2]),
                int(g[3]),
                int(g[4]),
                int(g[5]),
                g[6] == "sustained",
            )
        )
    return result


def ctc_available() -> bool:
    import importlib.util

    return (ROOT / "loadtests" / "bench_ctc.py").exists() and importlib.util.find_spec(
        "torch"
    ) is not None


def chart_batch(batch: BatchResult, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    clients = sorted(batch.served)
    ax.plot(clients, [batch.served[c] for c in clients], "o-", label="Theo served (HTTP, Serve)")
    if batch.bare_per_request:
        ax.axhline(
            batch.bare_per_request, color="gray", linestyle="--", label="bare engine, per request"
        )
    if batch.bare_joined:
        ax.axhline(
            batch.bare_joined, color="gray", linestyle=":", label="bare engine, clips joined"
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(clients or [1])
    ax.set_xticklabels([str(c) for c in clients] or ["1"])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("audio seconds per second")
    ax.set_title("Batch throughput vs concurrency (whisper-tiny.en)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_realtime(rows: list[RealtimeRow], path: Path) -> None:
    import matplotlib.pyplot as plt

    n = [r.sessions for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(n, [r.first_partial_p50 / 1000 for r in rows], "o-", label="first partial p50")
    ax.plot(n, [r.first_partial_p95 / 1000 for r in rows], "o--", label="first partial p95")
    ax.plot(n, [r.final_p50 / 1000 for r in rows], "s-", label="final p50 (from speech end)")
    ax.plot(n, [r.final_p95 / 1000 for r in rows], "s--", label="final p95 (from speech end)")
    ax.plot(n, [r.endpoint_p95 / 1000 for r in rows], "^:", label="after endpoint p95")
    ax.set_xlabel("concurrent realtime sessions (paced at real time)")
    ax.set_ylabel("latency (s)")
    ax.set_title("Realtime latency percentiles vs sessions (whisper-tiny.en)")
    ax.set_xticks(n)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_ctc(ctc: CtcResult, path: Path) -> None:
    import matplotlib.pyplot as plt

    n = [row[0] for row in ctc.service]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(n, [row[1] for row in ctc.service], "o-", label="partial latency p50")
    ax.plot(n, [row[2] for row in ctc.service], "o--", label="partial latency p95")
    ax.axhline(1000, color="gray", linestyle=":", label="sustained limit (p95 1 s)")
    ax.set_xlabel("concurrent realtime sessions on the WeNet replica (paced)")
    ax.set_ylabel("partial latency (ms)")
    ax.set_title("CTC streaming: partial latency vs sessions")
    ax.set_xticks(n)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def details(r: Run) -> list[str]:
    tail = "\n".join(r.output.strip().splitlines()[-60:])
    return [
        "<details><summary>output of <code>" + " ".join(r.command[1:]) + "</code> "
        f"(exit {r.returncode}, {r.seconds:.0f} s)</summary>",
        "",
        "```",
        tail,
        "```",
        "</details>",
        "",
    ]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=48, help="batch: requests per level")
    parser.add_argument("--sessions", default="1,2,4,6", help="realtime: session counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="realtime: audio per session")
    parser.add_argument("--ctc-sessions", default="4,8,16", help="CTC: session counts")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    day = datetime.now().strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    runs: list[Run] = []
    lines = [
        f"# Theo benchmark report, {day}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, "
        f"{platform.platform()}; load average before the runs "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min). "
        f"Command: `python loadtests/report.py "
        f"--requests {args.requests} --sessions {args.sessions} --seconds {args.seconds:g} "
        f"--ctc-sessions {args.ctc_sessions}`.",
        "",
    ]

    batch_run = run("batch", [python, "loadtests/bench_batch.py", "--requests", str(args.requests)])
    runs.append(batch_run)
    batch = parse_batch(batch_run.output)
    lines += ["## Batch throughput (REST)", ""]
    if batch.served:
        chart = f"{day}-batch.png"
        chart_batch(batch, args.out / chart)
        lines += [
            "| | audio-s/s |",
            "|---|---|",
            f"| bare engine, per request | {batch.bare_per_request} |",
            f"| bare engine, clips joined (packing bound) | {batch.bare_joined} |",
            *(f"| served, {c} clients | {v} |" for c, v in sorted(batch.served.items())),
            "",
        ]
        if batch.bare_per_request and 16 in batch.served and 1 in batch.served:
            lines += [
                f"served@16 / bare per request = {batch.served[16] / batch.bare_per_request:.2f}; "
                f"served@16 / served@1 = {batch.served[16] / batch.served[1]:.2f}.",
                "",
            ]
        lines += [f"![throughput vs concurrency]({chart})", ""]
    else:
        lines += ["The batch benchmark produced no numbers; its output is below.", ""]
    lines += details(batch_run)

    rt_run = run(
        "realtime",
        [python, "loadtests/bench_realtime.py", "--sessions", args.sessions,
         "--seconds", str(args.seconds), "--keep-going"],
    )  # fmt: skip
    runs.append(rt_run)
    rows = parse_realtime(rt_run.output)
    lines += ["## Realtime sessions (WebSocket, paced at real time)", ""]
    if rows:
        chart = f"{day}-realtime.png"
        chart_realtime(rows, args.out / chart)
        lines += [
            "| sessions | finals | first partial p50/p95 ms | final p50/p95 ms | after endpoint p50/p95 ms | dropped ms | WER | batch | sustained |",
            "|---|---|---|---|---|---|---|---|---|",
            *(
                f"| {r.sessions} | {r.finals} | {r.first_partial_p50:.0f} / {r.first_partial_p95:.0f} | "
                f"{r.final_p50:.0f} / {r.final_p95:.0f} | {r.endpoint_p50:.0f} / {r.endpoint_p95:.0f} | "
                f"{r.dropped_ms} | {r.wer:.3f} | {r.batch:.2f} | {'yes' if r.sustained else 'no'} |"
                for r in rows
            ),
            "",
            f"![latency percentiles vs sessions]({chart})",
            "",
        ]
    else:
        lines += ["The realtime benchmark produced no rows; its output is below.", ""]
    lines += details(rt_run)

    lines += ["## CTC streaming (WeNet)", ""]
    if not ctc_available():
        lines += ["Skipped: no `loadtests/bench_ctc.py` or no `wenet` extra (torch).", ""]
    else:
        sessions = args.ctc_sessions.split(",")
        ctc_run = run("ctc", [python, "loadtests/bench_ctc.py", "--sessions", *sessions])
        runs.append(ctc_run)
        ctc = parse_ctc(ctc_run.output)
        if ctc.engine:
            lines += [
                "Engine alone (in-process, one stream), a WeNet-sized conformer with random "
                "weights (compute cost, not accuracy):",
                "",
                "| chunk | audio per chunk ms | compute p50 ms | p95 ms | RTF |",
                "|---|---|---|---|---|",
                *(f"| {c} | {ms} | {p50} | {p95} | {rtf} |" for c, ms, p50, p95, rtf in ctc.engine),
                "",
            ]
        if ctc.service:
            chart = f"{day}-ctc.png"
            chart_ctc(ctc, args.out / chart)
            lines += [
                "Over the service (WebSocket, sticky WeNet replica, sessions paced at real time):",
                "",
                "| sessions | partial p50 ms | partial p95 ms | partials | dropped | errors | sustained |",
                "|---|---|---|---|---|---|---|",
                *(
                    f"| {n} | {p50:.0f} | {p95:.0f} | {k} | {d} | {e} | {'yes' if ok else 'no'} |"
                    for n, p50, p95, k, d, e, ok in ctc.service
                ),
                "",
                f"![partial latency vs sessions]({chart})",
                "",
            ]
        if not ctc.engine and not ctc.service:
            lines += ["The CTC benchmark produced no numbers; its output is below.", ""]
        lines += details(ctc_run)

    failed = [r.name for r in runs if r.returncode != 0]
    if failed:
        lines += [f"Failed benchmarks: {', '.join(failed)}.", ""]
    report = args.out / f"{day}.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
