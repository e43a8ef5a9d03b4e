"""How the CLI shows a live transcript: on a terminal the open utterance's partial is one
updating line (its stable words plain, its unstable tail dim) and each final replaces it on a
line of its own; into a pipe or a file only
the finals are written, one per line."""

from __future__ import annotations

import shutil
from typing import TextIO

CLEAR_LINE = "\r\x1b[2K"
DIM = "\x1b[2m"
RESET = "\x1b[0m"
ELLIPSIS = "…"


def clock(ms: int) -> str:
    """Milliseconds of stream audio -> `mm:ss.s`."""
    minutes, rest = divmod(max(0, ms), 60_000)
    return f"{minutes:02d}:{rest / 1000:04.1f}"


def fit(text: str, width: int) -> str:
    """The end of `text` that fits in `width` columns (the newest words matter most)."""
    if width < 2:
        return ""
    return text if len(text) < width else ELLIPSIS + text[-(width - 2) :]


class TranscriptPrinter:
    def __init__(self, out: TextIO, *, live: bool, timestamps: bool = False) -> None:
        self.out = out
        self.live = live
        self.timestamps = timestamps
        self._partial_shown = False

    @classmethod
    def for_stream(cls, out: TextIO, *, timestamps: bool = False) -> TranscriptPrinter:
        """Live partials only when `out` is a terminal."""
        return cls(out, live=out.isatty(), timestamps=timestamps)

    def partial(self, stable: str, unstable: str) -> None:
        """Stable words never change within the utterance; the unstable tail may."""
        if not self.live:
            return
        stable, unstable = stable.strip(), unstable.strip()
        width = shutil.get_terminal_size().columns
        shown = fit(" ".join(part for part in (stable, unstable) if part), width)
        tail = min(len(unstable), len(shown))
        head = shown[: len(shown) - tail]
        self.out.write(f"{CLEAR_LINE}{head}{DIM}{shown[len(shown) - tail :]}{RESET}")
        self.out.flush()
        self._partial_shown = True

    def final(self, text: str, start_ms: int, end_ms: int) -> None:
        self.clear()
        text = text.strip()
        if not text:
            return
        prefix = f"[{clock(start_ms)} - {clock(end_ms)}] " if self.timestamps else ""
        self.out.write(f"{prefix}{text}\n")
        self.out.flush()

    def clear(self) -> None:
        """Remove the partial line, if one is shown."""
        if self._partial_shown:
            self.out.write(CLEAR_LINE)
            self.out.flush()
            self._partial_shown = False
