"""Shared test helpers: reference clips, WER, and the `theo` command as a user runs it."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import jiwer

SHARED_DIR = Path(
    os.environ.get("THEO_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared")
)
AUDIO_DIR = SHARED_DIR / "audio"


@dataclass(frozen=True)
class Clip:
    path: Path
    duration: float
    language: str
    transcript: str


def clips() -> dict[str, Clip]:
    with (AUDIO_DIR / "manifest.tsv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return {
        row["file"]: Clip(
            AUDIO_DIR / row["file"], float(row["duration_s"]), row["language"], row["transcript"]
        )
        for row in rows
    }


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s']", " ", text)
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalize(reference), normalize(hypothesis)))


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.wer([normalize(r) for r in references], [normalize(h) for h in hypotheses]))


THEO = [sys.executable, "-m", "cli"]
"""The `theo` command of this checkout."""


def theo(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `theo ARGS` to completion (environment: ours plus `env`)."""
    return subprocess.run(
        [*THEO, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def theo_serve(port: int, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start `theo serve` on `port` (embedded local Ray) with exactly this environment; wait
    for it with `serve.local.wait_healthy(url, process=...)`."""
    return subprocess.Popen(
        [*THEO, "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
