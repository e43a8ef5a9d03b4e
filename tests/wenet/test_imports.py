"""The engine package imports (and a backend can be built) without any engine library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.abc, pkgutil, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "kaldi_native_fbank", "onnxruntime"}:
            raise ImportError(f"blocked {name}")
        return None

sys.meta_path.insert(0, Block())
import engines.wenet
from engines.manifest import load_manifest
from engines.wenet.backend import WenetBackend

for info in pkgutil.walk_packages(engines.wenet.__path__, "engines.wenet."):
    if not info.name.startswith("engines.wenet.testing"):
        importlib.import_module(info.name)
backend = WenetBackend(load_manifest(__import__("pathlib").Path(sys.argv[1])))
print(backend.health().state, backend.config.decoding_chunk_size)
try:
    backend.load()
except ImportError as exc:
    print("load:", exc)
"""


def test_engine_modules_import_without_engine_libraries(tmp_path: Path) -> None:
    manifest = tmp_path / "theo.yaml"
    manifest.write_text(
        "name: w\nengine: wenet\ncapabilities: {architecture: ctc}\n", encoding="utf-8"
    )
    (tmp_path / "units.txt").write_text("<blank> 0\n", encoding="utf-8")
    (tmp_path / "final.zip").write_bytes(b"")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(manifest)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines() == ["loading 16", "load: blocked torch"]
