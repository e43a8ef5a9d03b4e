"""The model generator: files, manifest, vocabulary, playback script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines.manifest import Architecture, load_manifest
from engines.wenet.testing.__main__ import main
from engines.wenet.testing.vocab import letter_units, parse_script, plain_text, word_pieces
from engines.wenet.units import UnitTable

B = "\u2581"


def test_cli_writes_a_loadable_model_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main([str(tmp_path), "--playback", "hi there", "--engine-config", '{"num_left_chunks": 4}'])
    report = json.loads(capsys.readouterr().out)
    assert report["transcript"] == "hi there"
    assert {p.name for p in tmp_path.iterdir()} == {"final.zip", "units.txt", "theo.yaml"}
    manifest = load_manifest(tmp_path / "theo.yaml")
    caps = manifest.capabilities
    assert manifest.engine == "wenet" and caps.architecture is Architecture.CTC
    assert caps.streaming and caps.hot_words and caps.partial_transcripts and caps.word_timestamps
    assert manifest.model_path() == tmp_path
    assert manifest.engine_config["decoding_chunk_size"] == 16
    assert manifest.engine_config["num_left_chunks"] == 4
    units = UnitTable.load(tmp_path / "units.txt")
    assert units.unit(0) == "<blank>" and units.unit(len(units) - 1) == "<sos/eos>"
    assert units.find(f"{B}hi") is not None and units.find(f"{B}the") is not None


def test_word_pieces_are_bpe_like() -> None:
    assert word_pieces("so") == [f"{B}so"]
    assert word_pieces("Americans,") == [f"{B}Ameri", "cans,"]
    assert word_pieces("你好") == ["你", "好"]


def test_script_alternatives() -> None:
    script = parse_script("ask {country|cuntry} now")
    assert script.primary == (f"{B}ask", f"{B}country", f"{B}now")
    assert script.alternative == (None, f"{B}cuntry", None)
    assert plain_text("ask {country|cuntry}  now") == "ask country now"
    with pytest.raises(ValueError, match="no words"):
        parse_script("  ")


def test_letter_vocabulary_has_the_requested_size() -> None:
    for size in (64, 5002):
        units = letter_units(size)
        assert len(units) == size == len(set(units))
