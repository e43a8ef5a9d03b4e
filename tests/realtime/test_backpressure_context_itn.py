"""Pacing advice, dropped-audio reports, decode context by capability, ITN."""

from __future__ import annotations

import itertools

import pytest

from engines.manifest import Architecture, Capabilities
from serve.realtime.backpressure import DropReport, RateMeter
from serve.realtime.context import HOT_WORDS_PREFIX, bounded_tail, decode_options
from serve.realtime.itn import apply_itn, supports_itn


def test_real_time_client_is_never_advised() -> None:
    meter = RateMeter(factor=1.2, burst_s=2.0)
    for step in range(600):
        assert meter.observe(0.1, now=step * 0.1) is None


def test_fast_client_is_told_how_long_to_wait() -> None:
    meter = RateMeter(factor=1.2, burst_s=2.0, advice_interval_s=1.0)
    advice = [meter.observe(0.1, now=i * 0.025) for i in range(200)]  # 4x real time
    given = [(i, a) for i, a in enumerate(advice) if a is not None]
    assert given, "4x real time must be rate limited"
    first_index, first = given[0]
    assert (first_index + 1) * 0.1 > 2.0  # the burst allowance comes first
    assert first.ratio > 3.5
    # waiting delay_ms brings the client back within 1.2x real time
    audio_s, elapsed = (first_index + 1) * 0.1, first_index * 0.025
    assert audio_s - 2.0 == pytest.approx(1.2 * (elapsed + first.delay_ms / 1000), abs=0.01)
    spaced = [i * 0.025 for i, _ in given]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(spaced))


def test_drop_report_aggregates() -> None:
    report = DropReport(interval_s=0.5)
    assert report.add(100, now=0.0) == 100
    assert report.add(40, now=0.1) is None
    assert report.add(60, now=0.2) is None
    assert report.add(10, now=0.6) == 110
    assert report.take(0.7, force=True) is None
    assert report.total_ms == 210


def caps(**flags: bool) -> Capabilities:
    return Capabilities(architecture=Architecture.ENCODER_DECODER, **flags)


def test_hot_words_go_native_when_the_model_has_them() -> None:
    context = decode_options(
        caps(hot_words=True, initial_prompt=True), ["Theo", "Ray"], None, max_prompt_chars=50
    )
    assert context.hot_words == ("Theo", "Ray") and context.prompt is None


def test_hot_words_go_to_the_prompt_otherwise() -> None:
    context = decode_options(
        caps(initial_prompt=True),
        ["Theo", "Ray"],
        "And so my fellow Americans.",
        max_prompt_chars=50,
    )
    assert context.hot_words == ()
    assert context.prompt == f"{HOT_WORDS_PREFIX} Theo, Ray. And so my fellow Americans."


def test_session_prompt_comes_first() -> None:
    context = decode_options(
        caps(initial_prompt=True), [], "previous words", max_prompt_chars=50, session_prompt="Theo"
    )
    assert context.prompt == "Theo previous words"


def test_no_prompt_without_the_capability() -> None:
    context = decode_options(caps(), ["Theo"], "previous words", max_prompt_chars=50)
    assert context.prompt is None and context.hot_words == ()


def test_previous_text_is_bounded_at_a_word() -> None:
    text = "ask not what your country can do for you ask what you can do for your country"
    tail = bounded_tail(text, 30)
    assert len(tail) <= 30 and text.endswith(tail) and tail == "you can do for your country"


def test_itn_turns_spelled_numbers_into_digits() -> None:
    assert apply_itn("I have twenty three apples and one hundred and five pears", "en") == (
        "I have 23 apples and 105 pears"
    )
    assert apply_itn("ele tem vinte e cinco anos", "pt") == "ele tem 25 anos"
    assert apply_itn("twenty three", "ja") == "twenty three"
    assert supports_itn("pt-BR") and not supports_itn(None)
