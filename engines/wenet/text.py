"""Units -> text and words: `▁` opens a word, CJK characters are words of their own and are
written without spaces between them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engines.text import is_cjk, join_words

SPACE = "\u2581"  # ▁, SentencePiece's word boundary


@dataclass(frozen=True)
class Piece:
    """One decoded unit with its position in the unit sequence."""

    index: int
    text: str


def split_words(units: Sequence[str]) -> list[list[Piece]]:
    """Group units into words: a `▁`-prefixed unit or a CJK character starts a new word;
    other units continue the current word. Special units (`<unk>`, ...) are dropped."""
    words: list[list[Piece]] = []
    current: list[Piece] = []
    for index, unit in enumerate(units):
        if unit.startswith("<") and unit.endswith(">"):
            continue
        for text, starts_word in _unit_parts(unit):
            if starts_word and current:
                words.append(current)
                current = []
            current.append(Piece(index, text))
            if len(text) == 1 and is_cjk(text):
                words.append(current)
                current = []
    if current:
        words.append(current)
    return [w for w in words if "".join(p.text for p in w)]


def _unit_parts(unit: str) -> list[tuple[str, bool]]:
    """A unit as (text, starts a word) parts; a unit may hold several CJK characters."""
    starts = unit.startswith(SPACE)
    body = unit.replace(SPACE, "")
    if not body:
        return [("", True)] if starts else []
    parts: list[tuple[str, bool]] = []
    run = ""
    for char in body:
        if is_cjk(char):
            if run:
                parts.append((run, starts))
                starts, run = False, ""
            parts.append((char, True))
        else:
            run += char
    if run:
        parts.append((run, starts))
    return parts


def units_to_text(units: Sequence[str], *, lowercase: bool = False) -> str:
    text = join_words(["".join(p.text for p in word) for word in split_words(units)])
    return text.lower() if lowercase else text
