"""Fixtures of the browser tests: one headless Chromium for the module (fake microphone playing
jfk.wav), a fresh page per test, and the folder where screenshots are kept."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import clips
from tests.ui.chromium import ensure_chromium, launch_args

ARTIFACTS = Path(os.environ.get("THEO_TEST_ARTIFACTS", Path(__file__).parents[1] / "artifacts"))
_saved: list[Path] = []


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def screenshot(artifacts_dir: Path) -> Any:
    """`screenshot(page, name)`: a full-page PNG of a Playwright page or a Marionette session,
    kept in the artifacts folder."""

    def take(page: Any, name: str) -> Path:
        path = artifacts_dir / f"{name}.png"
        if hasattr(page, "goto"):  # Playwright
            page.screenshot(path=str(path), full_page=True)
        else:  # Marionette: base64 PNG of the whole document
            path.write_bytes(base64.b64decode(page.screenshot(full=True)))
        _saved.append(path)
        return path

    return take


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    microphone = clips()["jfk.wav"].path
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=launch_args(microphone)
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, serve_url: str) -> Iterator[Any]:
    context = browser.new_context(base_url=serve_url, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    context.close()
    assert not problems, f"uncaught errors in the page: {problems}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _saved:
        terminalreporter.write_sep("-", "UI screenshots")
        for path in _saved:
            terminalreporter.write_line(str(path))
