"""Vocabularies for generated models: WeNet layout `<blank>`=0, `<unk>`=1, ..., `<sos/eos>`
last; BPE-style `▁` word starts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engines.text import is_cjk
from engines.wenet.text import SPACE

ALTERNATIVE = re.compile(r"\{([^{}|]+)\|([^{}|]+)\}")


@dataclass(frozen=True)
class Script:
    """What a playback model says: a primary unit per step, and maybe an alternative."""

    primary: tuple[str, ...]
    alternative: tuple[str | None, ...]


def word_pieces(word: str) -> list[str]:
    """A word as units: CJK characters alone; other runs as `▁` + first half, second half
    (long words) so that continuation pieces exist."""
    pieces: list[str] = []
    run = ""
    start = True
    for char in word + "\0":
        if char != "\0" and not is_cjk(char):
            run += char
            continue
        if run:
            prefix = SPACE if start else ""
            if len(run) > 4:
                half = (len(run) + 1) // 2
                pieces += [prefix + run[:half], run[half:]]
            else:
                pieces.append(prefix + run)
            run = ""
        if char != "\0":
            pieces.append(char)
        start = False
    return pieces


def parse_script(text: str) -> Script:
    """`text` with `{primary|alternative}` words; an alternative word is one unit."""
    primary: list[str] = []
    alternative: list[str | None] = []
    position = 0
    for match in ALTERNATIVE.finditer(text):
        for word in text[position : match.start()].split():
            pieces = word_pieces(word)
            primary += pieces
            alternative += [None] * len(pieces)
        primary.append(SPACE + match.group(1).strip())
        alternative.append(SPACE + match.group(2).strip())
        position = match.end()
    for word in text[position:].split():
        pieces = word_pieces(word)
        primary += pieces
        alternative += [None] * len(pieces)
    if not primary:
        raise ValueError("playback text has no words")
    return Script(tuple(primary), tuple(alternative))


def plain_text(text: str) -> str:
    """The transcript the playback model produces without hot words."""
    return " ".join(ALTERNATIVE.sub(lambda m: m.group(1).strip(), text).split())


def playback_units(script: Script) -> list[str]:
    """Script units plus single characters (so any word of those letters can be spelled)."""
    units = dict.fromkeys(script.primary)
    units.update(dict.fromkeys(a for a in script.alternative if a))
    chars = sorted({c for u in units for c in u if c != SPACE})
    units.update(dict.fromkeys([SPACE, *chars]))
    return wenet_layout(list(units))


def letter_units(size: int) -> list[str]:
    """A vocabulary of `size` units (specials included) made of letters and letter pairs."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    units = [SPACE + c for c in letters] + letters
    pairs = (a + b for a in letters for b in letters)
    while len(units) + 3 < size:
        pair = next(pairs, None)
        if pair is None:
            units.append(f"{SPACE}u{len(units)}")
        else:
            units += [SPACE + pair, pair][: size - 3 - len(units)]
    return wenet_layout(units[: max(0, size - 3)])


def wenet_layout(units: list[str]) -> list[str]:
    return ["<blank>", "<unk>", *units, "<sos/eos>"]


def units_txt(units: list[str]) -> str:
    return "".join(f"{unit} {i}\n" for i, unit in enumerate(units))
