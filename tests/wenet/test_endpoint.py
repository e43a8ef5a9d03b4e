from __future__ import annotations

import math

import numpy as np

from engines.wenet.config import EndpointConfig, EndpointRule
from engines.wenet.endpoint import EndpointDetector

BLANK = 0
FRAME_MS = 40


def frames(kinds: str) -> np.ndarray:
    """'s' = silence frame (blank 0.95), 'x' = speech frame (blank 0.1)."""
    rows = []
    for kind in kinds:
        blank = 0.95 if kind == "s" else 0.1
        rows.append([math.log(blank), math.log(1 - blank)])
    return np.array(rows, dtype=np.float32)


def detector(**rules: int | bool) -> EndpointDetector:
    return EndpointDetector(EndpointConfig().rules, frame_ms=FRAME_MS, blank=BLANK)


def test_trailing_silence_counts_only_after_the_last_speech_frame() -> None:
    d = detector()
    d.update(frames("ssxxs"))
    d.update(frames("sss"))
    assert d.trailing_silence_ms == 4 * FRAME_MS
    assert d.length_ms == 8 * FRAME_MS
    d.update(frames("x"))
    assert d.trailing_silence_ms == 0


def test_one_second_of_silence_after_speech_ends_the_utterance() -> None:
    d = detector()
    d.update(frames("x" + "s" * 24))
    assert not d.is_endpoint(decoded_something=True)
    d.update(frames("s"))
    assert d.is_endpoint(decoded_something=True)
    # without anything decoded only the 5 s rule applies
    assert not d.is_endpoint(decoded_something=False)


def test_five_seconds_of_silence_end_even_an_empty_utterance() -> None:
    d = detector()
    d.update(frames("s" * 124))
    assert not d.is_endpoint(decoded_something=False)
    d.update(frames("s"))
    assert d.is_endpoint(decoded_something=False)


def test_twenty_seconds_of_speech_force_an_endpoint() -> None:
    d = detector()
    d.update(frames("x" * 499))
    assert not d.is_endpoint(decoded_something=True)
    d.update(frames("x"))
    assert d.is_endpoint(decoded_something=True)


def test_custom_rules_and_threshold() -> None:
    rule = EndpointRule(must_decode_something=True, min_trailing_silence_ms=200)
    d = EndpointDetector([rule], frame_ms=FRAME_MS, blank=BLANK, blank_threshold=0.99)
    d.update(frames("xsssss"))  # blank 0.95 is not silence at threshold 0.99
    assert d.trailing_silence_ms == 0
    assert not d.is_endpoint(decoded_something=True)
    d.reset()
    assert d.frames == 0 and d.trailing_blank_frames == 0
