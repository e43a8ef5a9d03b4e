"""LocalAgreement-2 over whole-segment re-decodes, and the repetition-loop guard. Pure.

Every partial pass re-decodes the open segment from its start, so consecutive hypotheses
describe the same audio. A word is confirmed once two consecutive hypotheses agree on it (and
on everything before it) after the words already confirmed; confirmed words are never taken
back. The last word of a hypothesis is never confirmed: the audio may end inside it. The final
keeps the confirmed words and takes the rest from the final decode, so every partial is a
prefix of the final.
"""

from __future__ import annotations

import difflib
import re
import zlib

_PUNCT = re.compile(r"[^\w']+", re.UNICODE)
MAX_NGRAM = 6
LOOP_REPEATS = 3
"""An n-gram (n >= 2) repeated this many times in a row is a decoding loop."""
LOOP_REPEATS_UNIGRAM = 5
COMPRESSION_RATIO_THRESHOLD = 2.4


def normalize_word(word: str) -> str:
    return _PUNCT.sub("", word.lower())


def split_words(text: str) -> list[str]:
    return [w for w in text.split() if normalize_word(w)]


def join_words(words: list[str]) -> str:
    return " ".join(words)


def _norm(words: list[str]) -> list[str]:
    return [normalize_word(w) for w in words]


def common_prefix_length(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(_norm(a), _norm(b), strict=False):
        if x != y:
            break
        n += 1
    return n


def align_end(confirmed: list[str], hypothesis: list[str]) -> int:
    """Index in `hypothesis` just after the part that corresponds to `confirmed`.

    Exact prefixes are the common case; otherwise the last matching block of a word diff
    anchors the position (words the hypothesis changed count as substitutions).
    """
    k = len(confirmed)
    if k == 0:
        return 0
    conf, hyp = _norm(confirmed), _norm(hypothesis)
    if hyp[:k] == conf:
        return k
    matcher = difflib.SequenceMatcher(None, conf, hyp, autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size]
    if not blocks:
        return min(k, len(hypothesis))
    last = blocks[-1]
    return max(0, min(len(hypothesis), last.b + last.size + (k - (last.a + last.size))))


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def loop_start(words: list[str]) -> int | None:
    """Index where a repetition loop's second occurrence starts, or None."""
    norm = _norm(words)
    for i in range(len(norm)):
        for n in range(1, MAX_NGRAM + 1):
            repeats = LOOP_REPEATS_UNIGRAM if n == 1 else LOOP_REPEATS
            if i + n * repeats > len(norm):
                break
            gram = norm[i : i + n]
            if all(norm[i + r * n : i + (r + 1) * n] == gram for r in range(1, repeats)):
                return i + n
    return None


def trim_loop(words: list[str]) -> tuple[list[str], bool]:
    """The words before a repetition loop (one occurrence kept) and whether one was found."""
    start = loop_start(words)
    if start is not None:
        return words[:start], True
    if compression_ratio(join_words(words)) > COMPRESSION_RATIO_THRESHOLD:
        return [], True
    return words, False


class LocalAgreement:
    """Confirmed words of one open segment."""

    def __init__(self) -> None:
        self.confirmed: list[str] = []
        self._previous: list[str] | None = None
        self._previous_trusted = False

    def update(self, hypothesis: list[str], trusted: bool = True) -> list[str]:
        """Feed the newest whole-segment hypothesis; returns the words it newly confirmed.

        Words are only confirmed between two `trusted` hypotheses (the caller distrusts
        decodes the model itself scored as unlikely: two plausible mishearings of a short
        prefix can agree with each other).
        """
        previous, self._previous = self._previous, hypothesis
        both_trusted, self._previous_trusted = trusted and self._previous_trusted, trusted
        if previous is None or not both_trusted:
            return []
        old_tail = previous[align_end(self.confirmed, previous) :]
        new_tail = hypothesis[align_end(self.confirmed, hypothesis) :]
        agreed = min(common_prefix_length(old_tail, new_tail), max(len(new_tail) - 1, 0))
        newly = new_tail[:agreed]
        self.confirmed.extend(newly)
        return newly

    def stitch(self, final: list[str]) -> tuple[list[str], int]:
        """Confirmed words + the final decode's words after them; also the index in `final`
        where the appended part starts."""
        index = align_end(self.confirmed, final)
        return self.confirmed + final[index:], index
