"""LocalAgreement-2 and the repetition-loop guard."""

from __future__ import annotations

from serve.realtime.agreement import (
    LocalAgreement,
    align_end,
    commit_point,
    loop_start,
    split_words,
    trim_loop,
)


def test_words_need_two_agreeing_hypotheses_and_never_the_last_word() -> None:
    agreement = LocalAgreement()
    assert agreement.update(split_words("And so")) == []
    # "so" ended the previous hypothesis, but the newer one goes on past it: both agree
    assert agreement.update(split_words("And so my fellow")) == ["And", "so"]
    assert agreement.update(split_words("And so my fellow Americans,")) == ["my", "fellow"]
    assert agreement.update(split_words("And so my fellow Americans, ask")) == ["Americans,"]
    assert agreement.confirmed == ["And", "so", "my", "fellow", "Americans,"]


def test_confirmed_words_are_never_taken_back() -> None:
    agreement = LocalAgreement()
    agreement.update(split_words("ask not what"))
    agreement.update(split_words("ask not what your"))
    assert agreement.confirmed == ["ask", "not", "what"]
    # The model changes its mind about a confirmed word: it stays, and the new tail is
    # compared after the part of the hypothesis that corresponds to the confirmed words.
    assert agreement.update(split_words("Ask knot, what your country")) == ["your"]
    assert agreement.update(split_words("ask not what your country can")) == ["country"]
    assert agreement.confirmed == ["ask", "not", "what", "your", "country"]


def test_comparison_ignores_case_and_punctuation() -> None:
    agreement = LocalAgreement()
    agreement.update(split_words("Concord returned"))
    assert agreement.update(split_words("concord, Returned to")) == ["concord,", "Returned"]


def test_stitch_keeps_confirmed_words_and_appends_the_final_tail() -> None:
    agreement = LocalAgreement()
    agreement.update(split_words("I am from the"))
    agreement.update(split_words("I am from the cutter"))
    final = split_words("I'm from the cutter lying off the coast.")
    stitched, index = agreement.stitch(final)
    assert stitched[:4] == ["I", "am", "from", "the"]
    assert stitched[4:] == final[index:] == ["cutter", "lying", "off", "the", "coast."]


def test_align_end_with_insertions_and_substitutions() -> None:
    confirmed = ["and", "so", "my", "fellow"]
    assert align_end(confirmed, ["and", "so", "my", "fellow", "americans"]) == 4
    assert align_end(confirmed, ["and", "so", "am", "i", "fellow", "americans"]) == 5
    assert align_end(confirmed, []) == 0
    assert align_end([], ["a"]) == 0


def test_repetition_loops_are_cut() -> None:
    looped = split_words("thank you for the the the the the the music")
    assert loop_start(looped) == 4
    assert trim_loop(looped) == (split_words("thank you for the"), True)
    phrase_loop = split_words("go to the store go to the store go to the store go to")
    assert trim_loop(phrase_loop) == (split_words("go to the store"), True)
    fine = split_words("ask not what your country can do for you ask what you can do")
    assert trim_loop(fine) == (fine, False)


def test_untrusted_hypotheses_confirm_nothing() -> None:
    agreement = LocalAgreement()
    agreement.update(split_words("Common chord."), trusted=False)
    assert agreement.update(split_words("Common chord return."), trusted=False) == []
    assert agreement.update(split_words("Concord returned to its place."), trusted=True) == []
    assert agreement.update(split_words("Concord returned to its place amidst")) == split_words(
        "Concord returned to its place"
    )


def test_the_newest_hypothesis_is_split_into_stable_and_unstable_words() -> None:
    agreement = LocalAgreement()
    agreement.update(split_words("And so my"))
    assert (agreement.confirmed, agreement.unstable) == ([], ["And", "so", "my"])
    agreement.update(split_words("And so my fellow Americans"))
    assert agreement.confirmed == ["And", "so", "my"]
    assert agreement.unstable == ["fellow", "Americans"]
    agreement.update(split_words("and so my fellow american's ask"))
    assert agreement.unstable == ["american's", "ask"], "the newest decode's own tail"


def test_a_limit_holds_confirmation_back() -> None:
    agreement = LocalAgreement()
    agreement.limit = 2
    agreement.update(split_words("one two three four"))
    assert agreement.update(split_words("one two three four five")) == ["one", "two"]
    assert agreement.unstable == ["three", "four", "five"]
    agreement.limit = None
    assert agreement.update(split_words("one two three four five six")) == [
        "three",
        "four",
        "five",
    ]


def test_commit_point_needs_a_later_decode_that_agrees_and_ends_the_sentence() -> None:
    up_to_pause = split_words("Ask not what your country can do for you.")
    rules = {"sentence_end": True, "max_words": 0}
    # the later decode heard more and still ends the sentence there: commit
    later = split_words("ask not what your country can do for you. Ask what")
    assert commit_point(up_to_pause, later, **rules) is True
    # Whisper ends any audio with a period; the later decode goes on mid-sentence: no commit
    assert (
        commit_point(
            up_to_pause, split_words("Ask not what your country can do for you, ask"), **rules
        )
        is False
    )
    # it disagrees on a word: no commit
    assert (
        commit_point(
            up_to_pause, split_words("Ask not what our country can do for you. So"), **rules
        )
        is False
    )
    # not past the pause yet: wait
    assert commit_point(up_to_pause, split_words("Ask not what your country"), **rules) is None
    assert commit_point(up_to_pause, up_to_pause, **rules) is None
    # enough words commit at any pause, sentence or not
    clause = split_words("Ask not what your country can do for you,")
    assert commit_point(clause, [*clause, "ask"], sentence_end=False, max_words=9) is True
    assert commit_point(clause, [*clause, "ask"], sentence_end=True, max_words=10) is False
    assert commit_point([], ["a"], **rules) is False
