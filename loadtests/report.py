# ruff: noqa: E501  (table rows and chart calls read better unbroken)
"""One command for the benchmark report: runs the batch, realtime and (when a WeNet model is
present) CTC benchmarks, and writes `loadtests/results/<date>.md` with PNG charts beside it.

    .venv/bin/python loadtests/report.py [--requests 48] [--sessions 1,2,4,6] [--seconds 20]
                                         [--wenet-model DIR] [--out loadtests/results]

- batch (`bench_batch.py`): audio-seconds per second of the bare faster-whisper batched
  pipeline (per request, and all clips joined) vs Theo served at 1, 4 and 16 clients;
- realtime (`bench_realtime.py`): N paced WebSocket sessions; first-partial, final and
  after-endpoint latency percentiles, dropped audio, WER, engine batch size;
- CTC (`python -m engines.wenet.testing.bench`): per-chunk latency of N paced streams and the
  real-time factor, for the WeNet model in `--wenet-model` or the first one in
  `THEO_MODELS_DIR`; skipped (and said so) when there is none.

Each benchmark starts its own private Ray and runs in its own process; a failing one is
reported with its output and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

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


def parse_ctc(output: str) -> list[dict[str, Any]]:
    rows = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            rows.append(json.loads(line))
    return rows


def find_wenet_model(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    from engines.manifest import EngineName
    from engines.registry import ModelRegistry
    from serve.settings import TheoSettings

    models_dir = TheoSettings().models_dir
    if not models_dir.exists():
        return None
    for manifest in ModelRegistry.scan(models_dir).models.values():
        if manifest.engine is EngineName.WENET and manifest.directory is not None:
            return Path(manifest.directory)
    return None


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


def chart_ctc(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib.pyplot as plt

    paced = [r for r in rows if r.get("paced")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for chunk in sorted({r["chunk"] for r in paced}):
        sel = sorted((r for r in paced if r["chunk"] == chunk), key=lambda r: r["streams"])
        streams = [r["streams"] for r in sel]
        ax.plot(streams, [r["p50_ms"] for r in sel], "o-", label=f"chunk {chunk}: p50")
        ax.plot(streams, [r["p95_ms"] for r in sel], "o--", label=f"chunk {chunk}: p95")
        ax.axhline(sel[0]["chunk_ms"], color="gray", linestyle=":", label=f"chunk {chunk} length")
    ax.set_xlabel("paced streams (one replica)")
    ax.set_ylabel("chunk latency (ms)")
    ax.set_title("CTC streaming: chunk latency vs streams")
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
    parser.add_argument("--wenet-model", type=Path, help="CTC: a WeNet model directory")
    parser.add_argument("--ctc-streams", default="1,2,4", help="CTC: paced stream counts")
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
        f"--requests {args.requests} --sessions {args.sessions} --seconds {args.seconds:g}`.",
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
    model = find_wenet_model(args.wenet_model)
    if model is None:
        lines += [
            "Skipped: no WeNet model (`--wenet-model DIR`, or a `wenet` manifest in "
            "`THEO_MODELS_DIR`).",
            "",
        ]
    else:
        streams = args.ctc_streams.split(",")
        bench = [python, "-m", "engines.wenet.testing.bench", str(model), "--chunk", "16"]
        ctc_runs = [
            run("ctc", [*bench, "--streams", "1"]),
            run("ctc-paced", [*bench, "--streams", *streams, "--paced"]),
        ]
        runs += ctc_runs
        ctc_rows = [row for r in ctc_runs for row in parse_ctc(r.output)]
        if ctc_rows:
            chart = f"{day}-ctc.png"
            if any(r.get("paced") for r in ctc_rows):
                chart_ctc(ctc_rows, args.out / chart)
            lines += [
                f"Model: `{model}`.",
                "",
                "| streams | paced | chunk ms | p50 ms | p95 ms | RTF | sustained |",
                "|---|---|---|---|---|---|---|",
                *(
                    f"| {r['streams']} | {'yes' if r.get('paced') else 'no'} | {r['chunk_ms']} | "
                    f"{r['p50_ms']} | {r['p95_ms']} | {r.get('rtf', '')} | {r.get('sustained', '')} |"
                    for r in ctc_rows
                ),
                "",
                f"![chunk latency vs streams]({chart})",
                "",
            ]
        for r in ctc_runs:
            lines += details(r)

    failed = [r.name for r in runs if r.returncode != 0]
    if failed:
        lines += [f"Failed benchmarks: {', '.join(failed)}.", ""]
    report = args.out / f"{day}.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
