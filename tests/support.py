"""Shared test helpers: reference clips, WER, free ports."""

from __future__ import annotations

import csv
import os
import re
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
