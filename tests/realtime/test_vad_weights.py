"""The realtime VAD's weights are Theo's own package data (the gateway image has no engine
library): the file is the Silero v6 export faster-whisper ships, byte for byte."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from serve.realtime.vad import SILERO_SHA256, silero_model_path


def test_weights_are_package_data_with_a_known_digest() -> None:
    path = silero_model_path()
    assert path.is_relative_to(Path(__file__).resolve().parents[2] / "serve")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SILERO_SHA256


def test_weights_equal_the_file_faster_whisper_ships() -> None:
    """Provenance: where faster-whisper is installed (the local run and the Whisper image), its
    asset is the same file."""
    spec = importlib.util.find_spec("faster_whisper")
    assert spec is not None and spec.origin is not None, "make install installs faster-whisper"
    theirs = Path(spec.origin).parent / "assets" / "silero_vad_v6.onnx"
    assert theirs.read_bytes() == silero_model_path().read_bytes()
