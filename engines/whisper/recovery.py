"""Tail recovery: speech Whisper left untranscribed at the end of a window, and keeping the
recovered text from repeating what the window already has. Pure functions.

Whisper sometimes closes a window early (sequential decoding would seek there and go on).
The engine decodes the rest of such a window once more. That second decode may transcribe
again words the first one already has - at the seam, when the first decode's last timestamp
falls before its last word ends, or whole sentences, when the first decode put a later sentence
at an early timestamp (then the window's last segment holds a sentence the tail has again).
`repeated_words` says how much of each recovered segment to drop.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

TAIL_MIN_SECONDS = 1.0
"""Less untranscribed audio than this at the end of a window is not decoded again."""
MIN_REPEAT_WORDS = 3
"""A recovered segment of at least this many words found in the window's last segment is
dropped."""
MIN_SEAM_OVERLAP = 2
"""Fewer words than this overlapping at the seam are kept (they may be a real repetition)."""


def uncovered_tail(decoded_until: float, duration: float) -> float | None:
    """Where the untranscribed tail of a window starts (seconds from the window start), or
    None when it is shorter than `TAIL_MIN_SECONDS`."""
    if duration - decoded_until < TAIL_MIN_SECONDS:
        return None
    return decoded_until


def normalize_word(word: str) -> str:
    """Lower case, compatibility-folded, without punctuation: '' for a punctuation mark."""
    folded = unicodedata.normalize("NFKC", word).lower()
    return re.sub(r"[^\w]", "", folded)


def repeated_words(existing: Sequence[Sequence[str]], new: Sequence[str]) -> int:
    """How many leading words of a recovered segment (`new`) repeat the window's text so far
    (`existing`, its segments in time order); all words are normalised (`normalize_word`),
    '' entries are ignored.

    All of them when the segment, at least `MIN_REPEAT_WORDS` long, occurs in the window's last
    segment (the first decode put it too early), or, of any length, ends the window; otherwise
    the longest overlap of at least `MIN_SEAM_OVERLAP` words between the end of the window and
    the start of the segment. Text said twice further back in the window is speech said twice,
    and stays.
    """
    have = [w for segment in existing for w in segment if w]
    last = [w for w in existing[-1] if w] if existing else []
    words = [w for w in new if w]
    if not words:
        return 0
    n = len(words)
    if have[-n:] == words or (n >= MIN_REPEAT_WORDS and _contains(last, words)):
        return n
    for k in range(min(len(have), n - 1), MIN_SEAM_OVERLAP - 1, -1):
        if have[-k:] == words[:k]:
            return k
    return 0


def entries_to_drop(new: Sequence[str], words: int) -> int:
    """How many entries of `new` (words and '' punctuation entries) cover its first `words`
    words and the punctuation attached after them."""
    if words <= 0:
        return 0
    seen = 0
    for index, word in enumerate(new):
        if word:
            seen += 1
            if seen > words:
                return index
    return len(new)


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))
