"""`theo transcribe FILE --stream`, `theo listen` and the batch progress bar, run as a person
runs them (subprocesses) against the real service. The live display is checked on a real
pseudo-terminal: partials rewrite one line, finals get their own."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.display import CLEAR_LINE, DIM, RESET
from tests.conftest import API_KEY
from tests.pulse import VirtualMicrophone
from tests.realtime.helpers import norm_words, stream_wer
from tests.support import THEO, clips, theo, wer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
STAMPED = re.compile(r"^\[(\d\d:\d\d\.\d) - (\d\d:\d\d\.\d)\] (.+)$")


def on_terminal(*args: str, timeout: float = 120) -> tuple[int, str]:
    """Run `theo` with stdout and stderr on a pseudo-terminal; everything it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*THEO, *args], stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    return code, output.decode("utf-8", errors="replace").replace("\r\n", "\n")


def test_stream_on_a_terminal_updates_partials_in_place_then_prints_finals(
    serve_url: str,
) -> None:
    clip = clips()["jfk.wav"]
    args = ("transcribe", str(clip.path), "--stream", "--url", serve_url, "--api-key", API_KEY)
    started = time.monotonic()
    code, screen = on_terminal(*args)
    took = time.monotonic() - started
    assert code == 0, screen
    assert took >= clip.duration, "the default pace is real time"
    # A partial line: its stable words plain, then its unstable tail dim.
    partials = [
        (piece[: piece.index(DIM)], piece[piece.index(DIM) + len(DIM) : piece.index(RESET)])
        for piece in screen.split(CLEAR_LINE)
        if DIM in piece
    ]
    assert partials, f"no partial line was drawn: {screen!r}"
    assert "\n" not in "".join(s + u for s, u in partials), "partials stay on one line"
    assert any(stable.strip() for stable, _ in partials), "some words became stable"
    finals = [
        line.split(CLEAR_LINE)[-1] for line in screen.split("\n") if line.split(CLEAR_LINE)[-1]
    ]
    assert finals and not any(DIM in line for line in finals), screen
    assert stream_wer(clip.transcript, " ".join(finals)) <= 0.15, finals
    final_words = norm_words(" ".join(finals))
    for stable, _ in partials:  # stable words are never taken back; unstable ones may be
        words = norm_words(stable)[1:] if stable.startswith("…") else norm_words(stable)
        assert set(words) <= set(final_words), (stable, finals)


def test_stream_into_a_pipe_prints_only_finals_with_timestamps(serve_url: str) -> None:
    clip = clips()["6930-75918-0000.wav"]
    out = theo(
        "transcribe", str(clip.path), "--stream", "--speed", "3", "--timestamps",
        "--url", serve_url, "--api-key", API_KEY,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert CLEAR_LINE not in out.stdout and DIM not in out.stdout
    lines = out.stdout.splitlines()
    matches = [STAMPED.match(line) for line in lines]
    assert lines and all(matches), lines
    assert stream_wer(clip.transcript, " ".join(m.group(3) for m in matches if m)) <= 0.15
    assert all(m.group(1) < m.group(2) for m in matches if m)


def test_stream_errors_are_clear(serve_url: str, tmp_path: Path) -> None:
    clip = clips()["jfk.wav"]
    common = ("--stream", "--url", serve_url)
    wrong_key = theo("transcribe", str(clip.path), *common, "--api-key", "wrong")
    assert wrong_key.returncode == 1 and "invalid_api_key" in wrong_key.stderr
    unknown = theo("transcribe", str(clip.path), *common, "--api-key", API_KEY, "-m", "nope")
    assert unknown.returncode == 1 and "model_not_found" in unknown.stderr
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    bad = theo("transcribe", str(text), *common, "--api-key", API_KEY)
    assert bad.returncode == 1 and "could not be decoded as audio" in bad.stderr
    fmt = theo("transcribe", str(clip.path), *common, "--format", "srt")
    assert fmt.returncode == 2 and "--format applies to batch" in fmt.stderr


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualMicrophone]:
    mic = VirtualMicrophone(tmp_path_factory.mktemp("pulse"))
    mic.start()
    yield mic
    mic.stop()


def test_listen_transcribes_the_microphone_until_ctrl_c(
    serve_url: str, microphone: VirtualMicrophone
) -> None:
    """A real audio input: PortAudio -> ALSA's pulse plugin -> a PulseAudio source that plays
    a clip. Speech after the "listening" line is transcribed; Ctrl-C ends with exit 0."""
    import signal

    clip = clips()["6930-75918-0000.wav"]
    proc = subprocess.Popen(
        [*THEO, "listen", "--timestamps", "--url", serve_url, "--api-key", API_KEY],
        env={**os.environ, **microphone.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        ready = proc.stderr.readline()
        assert ready.startswith("listening on ") and "Ctrl-C stops" in ready, ready
        microphone.play(clip.path).wait(timeout=30)
        time.sleep(1.0)  # the endpoint's silence
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    matches = [STAMPED.match(line) for line in out.splitlines()]
    assert matches and all(matches), out
    assert stream_wer(clip.transcript, " ".join(m.group(3) for m in matches if m)) <= 0.15


def test_listen_without_an_audio_input_says_so(serve_url: str, tmp_path: Path) -> None:
    """No sound server to record from: `theo listen` says why it cannot listen."""
    nothing = {"PULSE_SERVER": f"unix:{tmp_path / 'no-server'}"}
    out = theo("listen", "--url", serve_url, "--api-key", API_KEY, timeout=60, env=nothing)
    assert out.returncode == 1, out.stdout
    message = out.stderr.strip()
    assert message.startswith("Error: no audio input"), message
    assert "theo transcribe FILE --stream" in message


def long_clip(path: Path, repeats: int) -> Path:
    """jfk.wav `repeats` times in one WAV file."""
    with wave.open(str(clips()["jfk.wav"].path)) as src:
        params, frames = src.getparams(), src.readframes(src.getnframes())
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(frames * repeats)
    return path


def test_batch_progress_for_a_long_file(serve_url: str, tmp_path: Path) -> None:
    clip = clips()["jfk.wav"]
    repeats = 2
    audio = long_clip(tmp_path / "long.wav", repeats)
    out = theo(
        "transcribe", str(audio), "--progress", "--url", serve_url, "--api-key", API_KEY,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert re.search(r"upload: 100%\|[^\n]*\| (\S+)/\1 ", out.stderr), out.stderr
    assert re.search(rf"transcribing {repeats * 11} s of audio: \d\d:\d\d elapsed", out.stderr)
    assert wer(" ".join([clip.transcript] * repeats), out.stdout) <= 0.15
