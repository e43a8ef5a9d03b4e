"""The page in headless Firefox (ESR) against the real service: the API key and model list,
the microphone (a PulseAudio source playing a clip; Firefox runs its AudioContext at 44.1 kHz,
so the worklet's resampler is in the path) to partials/finals and VAD states, and a file
upload to SRT with its download link."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY
from tests.pulse import VirtualMicrophone
from tests.realtime.helpers import norm_words, stream_wer
from tests.support import clips, wer
from tests.ui.firefox import firefox, wait_until
from tests.ui.test_page import MODEL, WATCH, assert_partial_styles

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
CLIP = "6930-75918-0000.wav"


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualMicrophone]:
    mic = VirtualMicrophone(tmp_path_factory.mktemp("pulse"))
    mic.start()
    yield mic
    mic.stop()


@pytest.fixture(scope="module")
def browser(microphone: VirtualMicrophone, artifacts_dir: Path) -> Iterator[Any]:
    with firefox(microphone.env, artifacts_dir / "firefox.log") as client:
        yield client


def js(browser: Any, script: str) -> Any:
    """Run `script` (a function body) in the page's own context."""
    return browser.execute_script(script, sandbox=None)


def shown(browser: Any) -> dict[str, Any]:
    return js(
        browser,
        """return {
          vad: document.getElementById("vad").dataset.state,
          error: document.getElementById("error-text").textContent,
          upload: document.getElementById("upload-status").textContent,
          file: document.getElementById("file").files.length,
          format: document.getElementById("format").value,
          transcript: document.getElementById("transcript").innerText,
          seen: window.__seen ?? null,
        };""",
    )


def finals_text(browser: Any) -> str:
    return str(
        js(
            browser,
            "return [...document.querySelectorAll('#transcript li.final .text')]"
            ".map(e => e.textContent).join(' ')",
        )
    )


def open_page(browser: Any, serve_url: str) -> None:
    """Load the page and enter the API key (the tab may remember it from an earlier test)."""
    from marionette_driver.by import By

    browser.navigate(f"{serve_url}/")
    options = "return [...document.querySelectorAll('#model option')].map(o => o.value)"
    key = browser.find_element(By.ID, "api-key")
    if not key.get_property("value"):
        wait_until(lambda: "401" in shown(browser)["error"], 15, lambda: str(shown(browser)))
    key.clear()
    key.send_keys(API_KEY)
    browser.find_element(By.ID, "language").click()  # the key field's change event
    wait_until(
        lambda: MODEL in js(browser, options) and not shown(browser)["error"],
        15,
        lambda: str(shown(browser)),
    )
    browser.find_element(By.CSS_SELECTOR, f"#model option[value='{MODEL}']").click()


def test_firefox_microphone_to_partials_and_finals(
    browser: Any, serve_url: str, microphone: VirtualMicrophone, screenshot: Any
) -> None:
    from marionette_driver.by import By

    clip = clips()[CLIP]
    open_page(browser, serve_url)
    js(browser, f"({WATCH})();")
    browser.find_element(By.ID, "mic").click()
    wait_until(lambda: shown(browser)["vad"] == "listening", 20, lambda: str(shown(browser)))
    assert js(browser, "return document.getElementById('mic').textContent") == "Stop microphone"
    microphone.play(clip.path).wait(timeout=30)

    def done() -> bool:
        now = shown(browser)
        return (
            now["vad"] == "listening" and stream_wer(clip.transcript, finals_text(browser)) <= 0.15
        )

    wait_until(done, 30, lambda: str(shown(browser)))
    assert screenshot(browser, "ui-firefox-microphone").stat().st_size > 0
    seen = shown(browser)["seen"]
    assert seen["states"][:3] == ["connecting", "listening", "speech"], seen["states"]
    assert seen["maxPartials"] <= 1, "a partial is replaced in place, never repeated"
    assert_partial_styles(seen)
    final_words = norm_words(finals_text(browser))
    for partial in seen["partials"]:
        assert final_words[: len(norm_words(partial["stable"]))] == norm_words(partial["stable"])
    browser.find_element(By.ID, "mic").click()
    wait_until(lambda: shown(browser)["vad"] == "off", 20, lambda: str(shown(browser)))
    assert not shown(browser)["error"]


def test_firefox_file_upload_to_srt(browser: Any, serve_url: str) -> None:
    from marionette_driver.by import By

    clip = clips()["jfk.wav"]
    open_page(browser, serve_url)
    browser.find_element(By.ID, "file").send_keys(str(clip.path))
    browser.find_element(By.CSS_SELECTOR, "#format option[value='srt']").click()
    browser.find_element(By.ID, "transcribe").click()
    result = "return document.getElementById('result').textContent"
    srt = wait_until(
        lambda: (text := js(browser, result)).startswith("1\n") and text,
        30,
        lambda: str(shown(browser)),
    )
    cues = [line for line in srt.splitlines() if line and "-->" not in line and not line.isdigit()]
    assert wer(clip.transcript, " ".join(cues)) <= 0.1
    link = browser.find_element(By.ID, "download")
    assert link.text == "Download jfk.srt"
    assert link.get_attribute("href").startswith("blob:")
