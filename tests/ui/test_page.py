"""The browser page at `/` in headless Chromium against the real service (gateway + engines on a
private local Ray): models from /v1/models behind the API key, the fake microphone playing
jfk.wav through the AudioWorklet to /v1/realtime (greyed partials replaced in place, timed
finals, VAD states), file upload with an SRT download, and errors shown on the page."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import API_KEY
from tests.realtime.helpers import norm_words, stream_wer
from tests.support import clips, wer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
MODELS = {"whisper-tiny.en", "whisper-base", "wenet-playback"}
MODEL = "whisper-tiny.en"
EN_DASH = "\u2013"
FINAL_TIME = re.compile(rf"^\d\d:\d\d\.\d {EN_DASH} \d\d:\d\d\.\d$")

# Records, from inside the page, every partial line and VAD state the page shows.
WATCH = """() => {
  window.__seen = { partials: [], states: [], maxPartials: 0, styles: null };
  const look = (e) => { const s = getComputedStyle(e); return [s.color, s.fontStyle]; };
  const list = document.getElementById("transcript");
  const vad = document.getElementById("vad");
  new MutationObserver(() => {
    const partials = list.querySelectorAll("li.partial");
    window.__seen.maxPartials = Math.max(window.__seen.maxPartials, partials.length);
    for (const item of partials) {
      const text = item.querySelector(".text").textContent;
      const stable = item.querySelector(".stable")?.textContent ?? "";
      const unstable = item.querySelector(".unstable")?.textContent ?? "";
      const last = window.__seen.partials.at(-1);
      if (!last || last.text !== text) {
        window.__seen.partials.push({ segment: item.dataset.segment, text, stable, unstable });
      }
      if (unstable && !window.__seen.styles) {
        window.__seen.styles = {
          stable: look(item.querySelector(".stable")),
          unstable: look(item.querySelector(".unstable")),
        };
      }
    }
  }).observe(list, { childList: true, subtree: true, characterData: true });
  new MutationObserver(() => {
    if (window.__seen.states.at(-1) !== vad.dataset.state) {
      window.__seen.states.push(vad.dataset.state);
    }
  }).observe(vad, { attributes: true, attributeFilter: ["data-state"] });
}"""


STABLE_STYLE = ["rgb(27, 31, 36)", "normal"]
UNSTABLE_STYLE = ["rgb(106, 115, 125)", "italic"]


def assert_partial_styles(seen: dict[str, Any]) -> None:
    """Unstable words were shown, greyed and in italics (AA contrast); stable words look as
    finals do."""
    assert seen["styles"], f"no partial with unstable words was shown: {seen['partials']}"
    assert seen["styles"]["unstable"] == UNSTABLE_STYLE, seen["styles"]
    assert seen["styles"]["stable"] == STABLE_STYLE, seen["styles"]


def state(page: Any) -> dict[str, Any]:
    """What the page shows, for failure messages."""
    return {
        "vad": page.locator("#vad").get_attribute("data-state"),
        "transcript": page.locator("#transcript").inner_text(),
        "error": page.locator("#error-text").inner_text(),
        "notice": page.locator("#live-notice").inner_text(),
        "seen": page.evaluate("window.__seen"),
    }


def open_with_key(page: Any) -> None:
    """Load the page, see it ask for the key, enter it, and get the models."""
    page.goto("/")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "401" in alert.inner_text() and "API key" in alert.inner_text()
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_label("API key").press("Tab")  # change event: the models load with the key
    expect(page.locator("#model option")).not_to_have_count(0)
    assert alert.is_hidden()


def test_page_lists_the_models_behind_the_api_key(page: Any) -> None:
    response = page.goto("/")
    assert response.ok and "default-src 'self'" in response.headers["content-security-policy"]
    open_with_key(page)
    options = page.locator("#model option")
    assert set(options.evaluate_all("options => options.map(o => o.value)")) == MODELS
    assert "faster-whisper" in page.locator("#model").inner_text()
    for label in ("API key", "Model", "Language", "Hot words", "Audio file", "Format"):
        assert page.get_by_label(label).count() == 1, f"no control labelled {label}"

    page.get_by_label("API key").fill("wrong-key")
    page.get_by_role("button", name="Reload").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "401: Incorrect API key provided." in alert.inner_text()
    assert options.count() == 0


def test_microphone_streams_partials_and_finals(page: Any, screenshot: Any) -> None:
    open_with_key(page)
    page.get_by_label("Model").select_option(MODEL)
    page.evaluate(WATCH)
    mic = page.get_by_role("button", name="Start microphone")
    mic.focus()
    page.keyboard.press("Enter")  # keyboard reaches the main control
    stop = page.get_by_role("button", name="Stop microphone")
    assert stop.get_attribute("aria-pressed") == "true"

    partial = page.locator("#transcript li.partial")
    try:
        partial.first.wait_for(timeout=30_000)
    except Exception as exc:
        raise AssertionError(f"no partial in 30 s; the page showed {state(page)}") from exc
    live_shot = screenshot(page, "ui-microphone-partial")

    reference = clips()["jfk.wav"].transcript
    finals = page.locator("#transcript li.final")
    deadline = time.monotonic() + 45
    while True:
        text = " ".join(finals.locator(".text").all_inner_texts())
        idle = page.locator("#vad").get_attribute("data-state") == "listening"
        if idle and stream_wer(reference, text) <= 0.15:
            break
        assert time.monotonic() < deadline, f"finals so far: {text!r}; {state(page)}"
        time.sleep(0.25)
    final_shot = screenshot(page, "ui-microphone-finals")

    times = finals.locator("time").all_inner_texts()
    assert times and all(FINAL_TIME.match(t) for t in times), times
    starts = [t.split(f" {EN_DASH} ")[0] for t in times]
    assert starts == sorted(starts)
    seen = page.evaluate("window.__seen")
    assert seen["partials"], "partials were shown before the finals"
    assert seen["maxPartials"] == 1, "one partial line, replaced in place"
    final_words = {
        item.get_attribute("data-segment"): norm_words(item.locator(".text").inner_text())
        for item in finals.all()
    }
    assert_partial_styles(seen)
    for shown in seen["partials"]:
        words = norm_words(shown["stable"])
        assert final_words[shown["segment"]][: len(words)] == words, (shown, final_words)
        assert shown["text"].startswith(shown["stable"]) and shown["text"].endswith(
            shown["unstable"]
        )
    assert seen["states"][:3] == ["connecting", "listening", "speech"], seen["states"]
    assert seen["states"][-1] == "listening"

    page.keyboard.press("Enter")  # focus stayed on the toggle: stop
    page.get_by_role("button", name="Start microphone").wait_for()
    assert page.locator("#vad-label").inner_text() == "Microphone off"
    assert page.get_by_role("alert").is_hidden()
    assert live_shot.stat().st_size > 0 and final_shot.stat().st_size > 0


def test_microphone_with_a_bad_language_shows_the_servers_error(page: Any) -> None:
    open_with_key(page)
    page.get_by_label("Model").select_option(MODEL)
    page.get_by_label("Language").fill("e")
    page.get_by_role("button", name="Start microphone").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Invalid value for 'language'" in alert.inner_text()
    page.get_by_role("button", name="Start microphone").wait_for()
    assert page.locator("#vad").get_attribute("data-state") == "off"


def test_file_upload_gives_the_transcript_and_an_srt_download(
    page: Any, screenshot: Any, tmp_path: Path
) -> None:
    clip = clips()["jfk.wav"]
    open_with_key(page)
    page.get_by_label("Model").select_option(MODEL)
    page.get_by_label("Audio file").set_input_files(str(clip.path))

    page.get_by_role("button", name="Transcribe file").click()
    page.get_by_role("status").filter(has_text="Done in").wait_for()
    assert wer(clip.transcript, page.locator("#result").inner_text()) <= 0.1

    page.get_by_label("Format").select_option("srt")
    page.get_by_role("button", name="Transcribe file").click()
    result = page.locator("#result")
    expect(result).to_have_text(re.compile(r"^1\n00:00:00,000 --> "))
    srt = result.inner_text()
    assert srt.startswith("1\n00:00:00,000 --> ")
    cues = [line for line in srt.splitlines() if line and "-->" not in line and not line.isdigit()]
    assert wer(clip.transcript, " ".join(cues)) <= 0.1
    link = page.get_by_role("link", name="Download jfk.srt")
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "jfk.srt"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_text(encoding="utf-8").strip() == srt.strip()
    screenshot(page, "ui-file-srt")


def test_a_file_that_is_not_audio_shows_the_error(page: Any) -> None:
    open_with_key(page)
    page.get_by_label("Audio file").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"these are not audio samples"}
    )
    page.get_by_role("button", name="Transcribe file").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    text = alert.inner_text()
    assert "Transcription failed: 400" in text and "could not be decoded as audio" in text
    assert page.locator("#result-box").is_hidden()
    assert page.get_by_role("button", name="Transcribe file").is_enabled()
