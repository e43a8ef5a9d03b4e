"""The dpkg status check that decides whether a test installs a Debian package."""

from __future__ import annotations

import shutil

import pytest

from tests.system_packages import _installed, status_is_installed


@pytest.mark.parametrize(
    ("status", "installed"),
    [
        ("install ok installed", True),
        ("hold ok installed", True),
        ("unknown ok not-installed", False),
        ("deinstall ok config-files", False),
        ("install ok half-installed", False),
        ("install ok unpacked", False),
        ("install reinstreq half-installed", False),
        ("", False),
    ],
)
def test_dpkg_status_words(status: str, installed: bool) -> None:
    assert status_is_installed(status) is installed


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg")
def test_real_dpkg_answers() -> None:
    assert _installed("dpkg")
    assert not _installed("theo-no-such-package")
