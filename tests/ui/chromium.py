"""The browser of the UI tests: Debian's `chromium` (installed with apt-get when missing, so a
fresh machine needs no manual step), driven by Playwright from PyPI through `executable_path`
(never `playwright install`). The fake capture device plays a WAV file as the microphone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path(os.environ.get("THEO_CHROMIUM", "/usr/bin/chromium"))
INSTALL_TIMEOUT_S = 900
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


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        [*prefix, "apt-get", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=INSTALL_TIMEOUT_S,
    )


def ensure_chromium() -> Path:
    """The Chromium binary, installed from Debian's packages if it is not there yet."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"{CHROMIUM} is missing and there is no apt-get to install it")
    install = ("install", "-y", "-q", "--no-install-recommends", "chromium")
    result = _apt(*install)
    if result.returncode != 0:  # a fresh machine has no package lists yet
        _apt("update", "-q")
        result = _apt(*install)
    if result.returncode != 0 or not CHROMIUM.exists():
        raise RuntimeError(f"could not install chromium: {result.stderr[-2000:]}")
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
