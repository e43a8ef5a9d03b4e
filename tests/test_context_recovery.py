"""Pure parts of long-form decoding: the prompt history across windows, the order windows are
decoded in, and the repeat filter of tail recovery."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from engines.base import SegmentResult, TranscribeOptions
from engines.whisper.context import (
    MAX_PREVIOUS_TOKENS,
    PromptHistory,
    bucketed,
    decode_windows,
)
from engines.whisper.jobs import WindowJob, WindowOutput
from engines.whisper.recovery import (
    entries_to_drop,
    normalize_word,
    repeated_words,
    uncovered_tail,
)


def segment(tokens: list[int], temperature: float = 0.0) -> SegmentResult:
    return SegmentResult(0, 0.0, 1.0, "x", tokens=tokens, temperature=temperature)


def test_history_grows_with_decoded_tokens_and_keeps_whisper_limit() -> None:
    history = PromptHistory.start([1, 2, 3])
    assert history.previous() == (1, 2, 3), "the initial prompt alone is kept whole"
    history = history.after([segment(list(range(100, 200))), segment(list(range(200, 400)))])
    assert len(history.tokens) == MAX_PREVIOUS_TOKENS
    assert history.tokens[-1] == 399 and history.previous() == history.tokens


def test_history_resets_after_a_window_decoded_hot() -> None:
    history = PromptHistory.start([1, 2]).after([segment([5, 6], temperature=0.6)])
    assert history.previous() == ()
    history = history.after([segment([7, 8], temperature=0.4)])
    assert history.previous() == (7, 8), "0.4 is below the reset temperature"


def test_previous_text_is_cut_to_a_bucket_of_its_own_length() -> None:
    assert bucketed(list(range(5))) == tuple(range(5))
    assert bucketed(list(range(100))) == tuple(range(36, 100))
    assert bucketed(list(range(140))) == tuple(range(12, 140))
    decoded = PromptHistory.start([]).after([segment(list(range(40)))])
    assert decoded.previous() == tuple(range(8, 40))


@dataclass
class Recorder:
    order: list[tuple[float, tuple[int, ...]]]
    in_flight: int = 0
    most_in_flight: int = 0

    async def decode(self, job: WindowJob) -> WindowOutput:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        self.order.append((job.offset, job.previous))
        token = 100 + int(job.offset)
        return WindowOutput("en", 1.0, [segment([token])], 1)


def jobs(n: int) -> list[WindowJob]:
    features = np.zeros((80, 3000), dtype=np.float32)
    return [WindowJob(float(i), 1.0, features, TranscribeOptions()) for i in range(n)]


async def test_windows_in_order_each_with_the_text_before_it() -> None:
    recorder = Recorder([])
    outputs = [
        out
        async for out in decode_windows(
            jobs(3), recorder.decode, PromptHistory.start([7]), condition_on_previous_text=True
        )
    ]
    assert [o.segments[0].tokens for o in outputs] == [[100], [101], [102]]
    assert recorder.order == [(0.0, (7,)), (1.0, (7, 100)), (2.0, (7, 100, 101))]
    assert recorder.most_in_flight == 1


async def test_without_context_all_windows_are_queued_at_once() -> None:
    recorder = Recorder([])
    outputs = [
        out
        async for out in decode_windows(
            jobs(3), recorder.decode, PromptHistory.start([7]), condition_on_previous_text=False
        )
    ]
    assert [o.segments[0].tokens for o in outputs] == [[100], [101], [102]]
    assert recorder.most_in_flight == 3
    assert {previous for _, previous in recorder.order} == {(7,)}


def words(text: str) -> list[str]:
    return [normalize_word(w) for w in text.replace(".", " .").split()]


def window(*segments: str) -> list[list[str]]:
    return [words(s) for s in segments]


def test_recovered_sentence_the_first_decode_put_too_early_is_dropped() -> None:
    # The first decode transcribed only the window's last sentence, stamped at its start; the
    # tail decode finds it again at its real place.
    late = "Elle est partie à huit heures."
    assert repeated_words(window(late), words(late)) == 6
    assert repeated_words(window("Bonjour.", late + " Merci."), words(late)) == 6


def test_speech_said_twice_in_a_window_is_kept() -> None:
    # JFK twice in one window: the tail's sentence was said earlier too, for real.
    jfk = window(
        "And so my fellow Americans, ask not what your country can do for you,",
        "ask what you can do for your country.",
        "And so my fellow Americans, ask not what your country can do for you,",
    )
    assert repeated_words(jfk, words("ask what you can do for your country.")) == 0


def test_seam_overlap_is_trimmed_and_new_words_kept() -> None:
    have = window("ask what you can do for your country")
    new = words("your country. And so my fellow Americans")
    assert repeated_words(have, new) == 2
    assert entries_to_drop(new, 2) == 3, "the full stop after 'country' goes too"
    assert repeated_words(have, words("country.")) == 1, "a segment that ends the window"


def test_new_text_and_short_coincidences_are_kept() -> None:
    have = window("press one for billing.", "press two for sales")
    assert repeated_words(have, words("and the weather")) == 0
    assert repeated_words(have, words("for sales")) == 2
    assert repeated_words(have, words("press one")) == 0, "two words elsewhere: coincidence"
    assert repeated_words(have, words("sales sales")) == 0
    assert repeated_words([], words("first words")) == 0


def test_uncovered_tail_needs_a_second_of_audio() -> None:
    assert uncovered_tail(7.0, 22.6) == 7.0
    assert uncovered_tail(22.0, 22.6) is None
    assert normalize_word("Country,") == "country" and normalize_word("¿") == ""
