"""The browser of the Chromium tests: Debian's `chromium` (installed with apt-get when missing),
driven by Playwright from PyPI through `executable_path` (never `playwright install`). The fake
capture device plays a WAV file as the microphone."""

from __future__ import annotations

from pathlib import Path

from tests.system_packages import ensure_packages

CHROMIUM = Path("/usr/bin/chromium")
QUIET_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--mute-audio",
)


def ensure_chromium() -> Path:
    if not CHROMIUM.exists():
        ensure_packages("chromium")
    return CHROMIUM


def launch_args(fake_microphone: Path) -> list[str]:
    """Headless, no sandbox or GPU, quiet, and a fake microphone playing the file once."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_microphone}%noloop",
        *QUIET_FLAGS,
    ]
