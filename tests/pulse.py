"""A private PulseAudio server whose default source is a virtual microphone: a WAV file played
into its `feed` sink is what every recording client hears (Firefox, PortAudio through ALSA's
pulse plugin). Clients find it through `PULSE_SERVER`. The server runs in the foreground as a
child of the test process, which stops it by its own pid."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.system_packages import ensure_packages

PACKAGES = ("pulseaudio", "pulseaudio-utils", "libasound2-plugins", "libportaudio2")
FEED_SINK = "feed"
SOURCE = "microphone"
START_TIMEOUT_S = 20


class VirtualMicrophone:
    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.socket = runtime_dir / "native"
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs to record from this server."""
        return {"PULSE_SERVER": f"unix:{self.socket}"}

    def _client_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def start(self) -> None:
        ensure_packages(*PACKAGES)
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        modules = [
            f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
            "module-null-sink sink_name=speaker",
            f"module-null-sink sink_name={FEED_SINK}",
            f"module-remap-source master={FEED_SINK}.monitor source_name={SOURCE} channels=1",
        ]
        private = str(self.runtime_dir)
        env = {**os.environ, "XDG_RUNTIME_DIR": private, "HOME": private}
        self._server = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
             "--log-target=stderr", *(f"--load={m}" for m in modules)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready():
            if self._server.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the PulseAudio server did not start")
            time.sleep(0.2)
        for command in (["set-default-sink", "speaker"], ["set-default-source", SOURCE]):
            subprocess.run(["pactl", *command], env=self._client_env(), check=True)

    def _ready(self) -> bool:
        if not self.socket.exists():
            return False
        info = subprocess.run(["pactl", "info"], env=self._client_env(), capture_output=True)
        return info.returncode == 0

    def play(self, wav: Path) -> subprocess.Popen[bytes]:
        """Start playing `wav` into the microphone; the process ends when it has played."""
        return subprocess.Popen(
            ["paplay", f"--device={FEED_SINK}", str(wav)], env=self._client_env()
        )

    def stop(self) -> None:
        if self._server is not None and self._server.poll() is None:
            self._server.terminate()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
        self._server = None
