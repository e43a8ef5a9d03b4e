"""Installing models: `theo models add DIR|TARBALL` offline and `theo pull URL` (a tarball
served over loopback HTTP), then loading them with the real WeNet engine."""

from __future__ import annotations

import asyncio
import functools
import http.server
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.base import TranscribeOptions
from engines.manifest import load_manifest
from serve.audio import decode_audio_bytes
from tests import support
from tests.support import clips, wer

TEXT = "ask not what your country can do for you"


@pytest.fixture(scope="module")
def wenet_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WeNet export as WeNet ships one: final.zip + units.txt, no theo.yaml."""
    from engines.wenet.testing import generate_model

    directory = tmp_path_factory.mktemp("export") / "20220506_u2pp_conformer_exp"
    audio = decode_audio_bytes(clips()["jfk.wav"].path.read_bytes())[16_000 * 2 : 16_000 * 7]
    generate_model(directory, playback=TEXT, fit_audio=audio, name="generated")
    (directory / "theo.yaml").unlink()
    return directory


def theo(*args: str, models_dir: Path) -> subprocess.CompletedProcess[str]:
    return support.theo(*args, env={"THEO_MODELS_DIR": str(models_dir)})


def transcribe(manifest_path: Path) -> str:
    from engines.wenet.backend import WenetBackend

    backend = WenetBackend(load_manifest(manifest_path))
    backend.load()
    audio = decode_audio_bytes(clips()["jfk.wav"].path.read_bytes())[16_000 * 2 : 16_000 * 7]
    return asyncio.run(backend.transcribe_file(audio, TranscribeOptions())).text


def test_models_add_bare_wenet_export(wenet_export: Path, tmp_path: Path) -> None:
    out = theo("models", "add", str(wenet_export), "--name", "wenet-u2pp", models_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    manifest = load_manifest(tmp_path / "wenet-u2pp" / "theo.yaml")
    assert manifest.engine == "wenet"
    assert manifest.capabilities.architecture.value == "ctc"
    # The generated manifest keeps WeNet's default attention rescoring, which this test
    # model's random decoder perturbs slightly; the CTC playback itself is exact.
    assert wer(TEXT, transcribe(tmp_path / "wenet-u2pp" / "theo.yaml")) <= 0.2
    listed = theo("models", models_dir=tmp_path)
    assert "wenet-u2pp" in listed.stdout and "ctc" in listed.stdout
    again = theo("models", "add", str(wenet_export), "--name", "wenet-u2pp", models_dir=tmp_path)
    assert again.returncode != 0 and "exists" in again.stderr


def test_models_add_rejects_a_folder_without_a_model(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    out = theo("models", "add", str(empty), models_dir=tmp_path / "models")
    assert out.returncode != 0 and "no theo.yaml" in out.stderr


@pytest.fixture
def tarball_server(wenet_export: Path, tmp_path: Path) -> Iterator[str]:
    site = tmp_path / "site"
    site.mkdir()
    with tarfile.open(site / "u2pp.tar.gz", "w:gz") as tar:
        tar.add(wenet_export, arcname=wenet_export.name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_pull_tarball_url_installs_wenet_export(tarball_server: str, tmp_path: Path) -> None:
    models = tmp_path / "models"
    out = theo("pull", f"{tarball_server}/u2pp.tar.gz", "--name", "wenet-pulled", models_dir=models)
    assert out.returncode == 0, out.stderr
    assert wer(TEXT, transcribe(models / "wenet-pulled" / "theo.yaml")) <= 0.2
    missing = theo("pull", f"{tarball_server}/nope.tar.gz", models_dir=models)
    assert missing.returncode != 0 and "404" in missing.stderr


def test_models_add_tarball_offline(tarball_server: str, tmp_path: Path) -> None:
    site_tar = Path(tmp_path / "site" / "u2pp.tar.gz")
    copy = tmp_path / "copy.tar.gz"
    shutil.copy(site_tar, copy)
    out = theo("models", "add", str(copy), "--name", "wenet-tar", models_dir=tmp_path / "m")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "m" / "wenet-tar" / "final.zip").exists()
