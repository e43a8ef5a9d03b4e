"""Engine-neutral text helpers: joining words the way scripts write them (no spaces between
CJK characters)."""

from __future__ import annotations

from collections.abc import Sequence

_CJK_RANGES = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x2FA1F),  # Extensions B..F, compatibility supplement
)


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def join_words(words: Sequence[str]) -> str:
    """Space between words, except next to a CJK character."""
    out = ""
    for word in words:
        if not word:
            continue
        if out and not (is_cjk(out[-1]) or is_cjk(word[0])):
            out += " "
        out += word
    return out
