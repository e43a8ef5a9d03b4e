"""Debian packages some end-to-end tests need (browsers, a sound server, PortAudio): installed
with apt-get on first use, so a fresh machine of this kind needs no manual step."""

from __future__ import annotations

import os
import shutil
import subprocess

INSTALL_TIMEOUT_S = 900


def status_is_installed(status: str) -> bool:
    """dpkg's `${Status}` is "<want> <error> <state>"; only the state `installed` counts.

    A package dpkg never saw reads "unknown ok not-installed", a removed one
    "deinstall ok config-files": neither is installed, though both end in "installed"."""
    words = status.split()
    return len(words) == 3 and words[1] == "ok" and words[2] == "installed"


def _installed(package: str) -> bool:
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return status.returncode == 0 and status_is_installed(status.stdout)


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    return subprocess.run(
        [*prefix, "apt-get", "-o", "DPkg::Lock::Timeout=300", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        timeout=INSTALL_TIMEOUT_S,
    )


def ensure_packages(*packages: str) -> None:
    """Install the packages that are missing (refreshing the package lists if needed)."""
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"missing Debian packages {missing} and no apt-get to install them")
    install = ("install", "-y", "-q", "--no-install-recommends", *missing)
    result = _apt(*install)
    if result.returncode != 0:  # a fresh machine has no package lists yet
        _apt("update", "-q")
        result = _apt(*install)
    if result.returncode != 0:
        raise RuntimeError(f"could not install {missing}: {result.stderr[-2000:]}")
