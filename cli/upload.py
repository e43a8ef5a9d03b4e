"""`theo transcribe FILE` (batch): the upload to `/v1/audio/transcriptions`, with progress on
stderr for long files: a bar of the bytes sent, then the time elapsed while the service
transcribes (it reports no progress of its own for one request)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import IO, Any

import httpx

LONG_AUDIO_S = 60.0
"""From this length on, a file gets a progress bar when stderr is a terminal."""
TICK_S = 0.25
LOG_TICK_S = 5.0
"""When stderr is a file or a pipe, a line every few seconds is enough."""


def audio_duration(path: Path) -> float | None:
    """The file's length in seconds from its container, without decoding it."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return float(container.duration) / 1_000_000
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except (av.error.FFmpegError, IndexError, ValueError):
        return None
    return None


def plan_progress(choice: bool | None, path: Path) -> tuple[bool, float | None]:
    """(show progress?, audio seconds): `--progress`/`--no-progress`, else on for long files
    when stderr is a terminal. The file is probed only when progress may be shown."""
    if choice is False or (choice is None and not sys.stderr.isatty()):
        return False, None
    duration = audio_duration(path)
    return choice is True or (duration or 0.0) >= LONG_AUDIO_S, duration


class UploadProgress:
    """Two lines on stderr: a bar of the bytes sent, then, once the last byte is read, the time
    spent waiting for the transcript (ticking until `finish`)."""

    def __init__(self, size: int, duration: float | None) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._duration = duration
        self._upload = tqdm(
            total=size, desc="upload", unit="B", unit_scale=True, file=sys.stderr, leave=True
        )
        self._wait: Any = None
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def sent(self, count: int) -> None:
        self._upload.update(count)
        if self._upload.n >= (self._upload.total or 0) and self._wait is None:
            self._upload.close()
            audio = f" {self._duration:.0f} s of audio" if self._duration else ""
            self._wait = self._tqdm(
                desc=f"transcribing{audio}",
                file=sys.stderr,
                bar_format="{desc}: {elapsed} elapsed",
                leave=True,
            )
            self._ticker.start()

    def restart(self) -> None:
        if self._upload.n:
            self._upload.reset()

    def _tick(self) -> None:
        interval = TICK_S if sys.stderr.isatty() else LOG_TICK_S
        while not self._stop.wait(interval):
            self._wait.refresh()

    def finish(self) -> None:
        self._stop.set()
        if self._wait is not None:
            self._ticker.join()
            self._wait.close()
        else:
            self._upload.close()


class CountingReader:
    """A binary file that reports each chunk httpx reads from it for the upload."""

    def __init__(self, fh: IO[bytes], progress: UploadProgress) -> None:
        self._fh = fh
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._progress.sent(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and whence == 0:
            self._progress.restart()
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        return self._fh.fileno()


def post_transcription(
    url: str,
    path: Path,
    data: dict[str, str],
    headers: dict[str, str],
    *,
    progress: bool,
    duration: float | None,
) -> httpx.Response:
    """POST the file; with `progress`, the upload and the wait are shown on stderr."""
    endpoint = f"{url.rstrip('/')}/v1/audio/transcriptions"
    with path.open("rb") as fh:
        if not progress:
            return httpx.post(
                endpoint, data=data, files={"file": (path.name, fh)}, headers=headers, timeout=600
            )
        shown = UploadProgress(path.stat().st_size, duration)
        upload = CountingReader(fh, shown)
        try:
            return httpx.post(
                endpoint,
                data=data,
                files={"file": (path.name, upload)},  # type: ignore[dict-item]
                headers=headers,
                timeout=600,
            )
        finally:
            shown.finish()
