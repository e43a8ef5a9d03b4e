"""Units -> text and words; phrases -> units."""

from __future__ import annotations

import pytest

from engines.text import join_words
from engines.wenet.text import split_words, units_to_text
from engines.wenet.units import UnitTable

B = "\u2581"


def test_bpe_word_starts_become_spaces() -> None:
    assert units_to_text([f"{B}HE", "LLO", f"{B}WORLD"]) == "HELLO WORLD"
    assert units_to_text([f"{B}HE", "LLO", f"{B}WORLD"], lowercase=True) == "hello world"


def test_a_lone_word_boundary_unit_opens_the_next_word() -> None:
    assert units_to_text(["a", B, "b", "c"]) == "a bc"


def test_special_units_are_dropped() -> None:
    assert units_to_text(["<blank>", f"{B}A", "<unk>", f"{B}B", "<sos/eos>"]) == "A B"


def test_cjk_characters_are_words_without_spaces_between_them() -> None:
    assert units_to_text(["你", "好", f"{B}HELLO", "世", "界"]) == "你好HELLO世界"
    assert [len(w) for w in split_words(["你好", f"{B}OK"])] == [1, 1, 1]
    assert units_to_text(["你好", f"{B}OK", f"{B}THEN"]) == "你好OK THEN"


def test_join_words_spaces_latin_only() -> None:
    assert join_words(["a", "b", "中", "文", "c"]) == "a b中文c"


def table(*units: str) -> UnitTable:
    return UnitTable.from_lines([f"{u} {i}" for i, u in enumerate(units)])


def test_units_txt_parsing_and_lookup() -> None:
    units = table("<blank>", "<unk>", f"{B}A", "<sos/eos>")
    assert len(units) == 4
    assert units.blank_id() == 0
    assert units.find(f"{B}A") == 2 and units.find("missing") is None
    assert units.is_special(3) and not units.is_special(2)
    with pytest.raises(ValueError, match="without gaps"):
        UnitTable.from_lines(["<blank> 0", "a 2"])
    with pytest.raises(ValueError, match="line 2"):
        UnitTable.from_lines(["<blank> 0", "a b c"])


def test_tokenize_prefers_the_longest_units() -> None:
    units = table(
        "<blank>", "<unk>", f"{B}HE", f"{B}HELLO", "LL", "O", f"{B}W", "ORLD", "<sos/eos>"
    )
    assert units.tokenize("hello world") == [3, 6, 7]
    assert units.tokenize("HELLO") == [3]


def test_tokenize_falls_back_to_a_lone_boundary_unit() -> None:
    units = table("<blank>", B, "a", "b", "<sos/eos>")
    assert units.tokenize("ab") == [1, 2, 3]


def test_tokenize_cjk_per_character() -> None:
    units = table("<blank>", "你", "好", "<sos/eos>")
    assert units.tokenize("你好") == [1, 2]
    assert units.tokenize("你们") is None


def test_tokenize_unknown_pieces_give_none() -> None:
    units = table("<blank>", f"{B}A", "<sos/eos>")
    assert units.tokenize("AZ") is None
    assert units.tokenize("   ") is None
