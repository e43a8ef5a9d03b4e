"""LocalAgreement-2 over whole-segment re-decodes, and the repetition-loop guard. Pure.

Every partial pass re-decodes the open segment from its start, so consecutive hypotheses
describe the same audio. A word is confirmed once two consecutive hypotheses agree on it (and
on everything before it) after the words already confirmed; confirmed words are never taken
back. The last word of a hypothesis is never confirmed: the audio may end inside it. The final
keeps the confirmed words and takes the rest from the final decode, so the stable part of every
partial is a prefix of the final. The rest of the newest hypothesis is the unstable tail: shown
at once, replaced by the next decode.

A segment may also be committed early, at a pause the VAD saw (`commit_point`): when a decode
that heard speech beyond the pause agrees word for word with the decode of the audio up to
it, and both end a sentence there (or the segment already holds enough words).
"""

from __future__ import annotations

import difflib
import re
import zlib

_PUNCT = re.compile(r"[^\w']+", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"')\]\u201d\u2019]*$")
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


def ends_sentence(word: str) -> bool:
    return bool(_SENTENCE_END.search(word))


def commit_point(
    candidate: list[str], hypothesis: list[str], *, sentence_end: bool, max_words: int
) -> bool | None:
    """Whether the words of `candidate` (a decode of the segment up to a pause) may be
    committed as a final, judged by `hypothesis` (a later decode that heard speech beyond the
    pause): True when the hypothesis goes on past them word for word and either both end a
    sentence at the last of them (`sentence_end`) or there are `max_words` of them (0: no word
    limit); False when the hypothesis disagrees; None when it has not gone beyond them yet."""
    n = len(candidate)
    if n == 0:
        return False
    if len(hypothesis) <= n:
        return None if _norm(hypothesis) == _norm(candidate)[: len(hypothesis)] else False
    if _norm(hypothesis[:n]) != _norm(candidate):
        return False
    if max_words and n >= max_words:
        return True
    return sentence_end and ends_sentence(candidate[-1]) and ends_sentence(hypothesis[n - 1])


class LocalAgreement:
    """Confirmed words of one open segment, and the newest hypothesis."""

    def __init__(self) -> None:
        self.confirmed: list[str] = []
        self.hypothesis: list[str] = []
        self.limit: int | None = None
        """At most this many confirmed words for now (None: no limit)."""
        self._previous: list[str] | None = None
        self._previous_trusted = False

    def update(self, hypothesis: list[str], trusted: bool = True) -> list[str]:
        """Feed the newest whole-segment hypothesis; returns the words it newly confirmed.

        Words are only confirmed between two `trusted` hypotheses (the caller distrusts
        decodes the model itself scored as unlikely: two plausible mishearings of a short
        prefix can agree with each other).
        """
        previous, self._previous = self._previous, hypothesis
        self.hypothesis = hypothesis
        both_trusted, self._previous_trusted = trusted and self._previous_trusted, trusted
        if previous is None or not both_trusted:
            return []
        old_tail = previous[align_end(self.confirmed, previous) :]
        new_tail = hypothesis[align_end(self.confirmed, hypothesis) :]
        agreed = min(common_prefix_length(old_tail, new_tail), max(len(new_tail) - 1, 0))
        if self.limit is not None:
            agreed = max(0, min(agreed, self.limit - len(self.confirmed)))
        newly = new_tail[:agreed]
        self.confirmed.extend(newly)
        return newly

    @property
    def unstable(self) -> list[str]:
        """The newest hypothesis after the part that corresponds to the confirmed words."""
        return self.hypothesis[align_end(self.confirmed, self.hypothesis) :]

    def stitch(self, final: list[str]) -> tuple[list[str], int]:
        """Confirmed words + the final decode's words after them; also the index in `final`
        where the appended part starts."""
        index = align_end(self.confirmed, final)
        return self.confirmed + final[index:], index
