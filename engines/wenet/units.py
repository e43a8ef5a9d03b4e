"""WeNet's `units.txt` (one `<unit> <id>` per line) and splitting phrases into its units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engines.text import is_cjk
from engines.wenet.text import SPACE

BLANK = "<blank>"
UNK = "<unk>"
SOS_EOS = "<sos/eos>"
SPECIAL_PREFIX = "<"


@dataclass(frozen=True)
class UnitTable:
    units: tuple[str, ...]
    ids: dict[str, int] = field(default_factory=dict, compare=False)

    @classmethod
    def from_lines(cls, lines: Sequence[str]) -> UnitTable:
        pairs: list[tuple[int, str]] = []
        for number, line in enumerate(lines, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(f"units line {number}: expected '<unit> <id>', got {line!r}")
            pairs.append((int(parts[1]), parts[0]))
        pairs.sort()
        if [i for i, _ in pairs] != list(range(len(pairs))):
            raise ValueError("unit ids must be 0..N-1 without gaps")
        units = tuple(unit for _, unit in pairs)
        return cls(units, {unit: i for i, unit in enumerate(units)})

    @classmethod
    def load(cls, path: Path) -> UnitTable:
        return cls.from_lines(path.read_text(encoding="utf-8").splitlines())

    def __len__(self) -> int:
        return len(self.units)

    def unit(self, unit_id: int) -> str:
        return self.units[unit_id]

    def find(self, unit: str) -> int | None:
        return self.ids.get(unit)

    def blank_id(self) -> int:
        found = self.find(BLANK)
        return 0 if found is None else found

    def is_special(self, unit_id: int) -> bool:
        unit = self.units[unit_id]
        return unit.startswith(SPECIAL_PREFIX) and unit.endswith(">")

    def tokenize(self, phrase: str) -> list[int] | None:
        """Greedy longest-match split of `phrase` into unit ids, `▁` opening each word.

        Tries the phrase's case, then upper and lower case (vocabularies are often single
        case). None when some part has no unit: such a hot word cannot be boosted.
        """
        for variant in dict.fromkeys((phrase, phrase.upper(), phrase.lower())):
            ids = self._tokenize_exact(variant)
            if ids is not None:
                return ids
        return None

    def _tokenize_exact(self, phrase: str) -> list[int] | None:
        ids: list[int] = []
        for word in phrase.split():
            word_ids = self._tokenize_word(word)
            if word_ids is None:
                return None
            ids += word_ids
        return ids or None

    def _tokenize_word(self, word: str) -> list[int] | None:
        ids: list[int] = []
        start = 0
        first = True
        while start < len(word):
            if is_cjk(word[start]):
                found = self.find(word[start])
                if found is None:
                    return None
                ids.append(found)
                start += 1
                first = False
                continue
            match = self._longest(word, start, SPACE if first else "")
            if match is None and first and SPACE in self.ids:
                ids.append(self.ids[SPACE])
                first = False
                continue
            if match is None:
                return None
            unit_id, start = match
            ids.append(unit_id)
            first = False
        return ids

    def _longest(self, word: str, start: int, prefix: str) -> tuple[int, int] | None:
        end = len(word)
        while end > start and is_cjk(word[end - 1]):
            end -= 1
        for stop in range(end, start, -1):
            found = self.find(prefix + word[start:stop])
            if found is not None:
                return found, stop
        return None
