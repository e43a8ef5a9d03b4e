"""`theo listen`: the default audio input (PortAudio through `sounddevice`) as a realtime source,
PCM16 mono chunks of 100 ms at a rate the server takes, until the stop event is set (Ctrl-C).

`NoMicrophoneError` says why there is nothing to listen to: PortAudio missing, no input device,
or no usable sample rate.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from cli.display import TranscriptPrinter
from cli.stream import Pacer, StreamSummary, StreamTarget, Warn, stream_session

SERVER_RATES = (16_000, 48_000, 24_000, 8_000)
"""Rates `/v1/realtime` accepts, in order of preference."""
CHUNK_MS = 100
INSTEAD = "stream a file instead: theo transcribe FILE --stream"


class NoMicrophoneError(Exception):
    """No audio input can be opened on this machine."""


def load_sounddevice() -> Any:
    try:
        import sounddevice  # type: ignore[import-untyped]
    except OSError as exc:  # the Python package is there, the PortAudio library is not
        raise NoMicrophoneError(
            f"no audio input: the PortAudio library is missing ({exc}); install it "
            f"(Debian/Ubuntu: apt-get install libportaudio2) or {INSTEAD}"
        ) from None
    return sounddevice


def input_device(sd: Any) -> dict[str, Any]:
    """The default input device, or `NoMicrophoneError`."""
    try:
        device: dict[str, Any] = sd.query_devices(kind="input")
    except (sd.PortAudioError, ValueError) as exc:
        raise NoMicrophoneError(f"no audio input device found ({exc}); {INSTEAD}") from None
    if int(device.get("max_input_channels", 0)) < 1:
        raise NoMicrophoneError(f"no audio input device found; {INSTEAD}")
    return device


def usable_rate(sd: Any) -> int:
    """The first server rate the default input can record mono PCM16 at."""
    for rate in SERVER_RATES:
        try:
            sd.check_input_settings(samplerate=rate, channels=1, dtype="int16")
        except (sd.PortAudioError, ValueError):
            continue
        return rate
    raise NoMicrophoneError(
        "the audio input records at none of 8, 16, 24 or 48 kHz mono; " + INSTEAD
    )


@dataclass
class Microphone:
    name: str
    rate: int
    _sd: Any

    async def chunks(
        self, stop: asyncio.Event, opened: Callable[[], None] | None = None
    ) -> AsyncGenerator[bytes, None]:
        """Recorded chunks as they come, until `stop` is set; `opened` is called once the
        input is recording."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        def callback(data: Any, frames: int, when: Any, status: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, bytes(data))

        blocksize = self.rate * CHUNK_MS // 1000
        with self._sd.RawInputStream(
            samplerate=self.rate, channels=1, dtype="int16", blocksize=blocksize, callback=callback
        ):
            if opened is not None:
                opened()
            stopping = asyncio.create_task(stop.wait())
            try:
                while True:
                    getting = asyncio.create_task(queue.get())
                    done, _ = await asyncio.wait(
                        {getting, stopping}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getting not in done:
                        getting.cancel()
                        return
                    yield getting.result()
            finally:
                stopping.cancel()


def open_microphone() -> Microphone:
    sd = load_sounddevice()
    device = input_device(sd)
    return Microphone(name=str(device.get("name", "default")), rate=usable_rate(sd), _sd=sd)


def run_listen(
    target: StreamTarget,
    microphone: Microphone,
    *,
    timestamps: bool,
    warn: Warn,
    opened: Callable[[], None],
) -> StreamSummary:
    """`theo listen`: the microphone's transcript on stdout until Ctrl-C (or SIGTERM), then
    the open utterance's final. `opened` is called when the session is ready and the
    microphone records."""
    printer = TranscriptPrinter.for_stream(sys.stdout, timestamps=timestamps)

    async def run() -> StreamSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        chunks = microphone.chunks(stop, opened)
        return await stream_session(target, chunks, microphone.rate, printer, Pacer(), warn)

    return asyncio.run(run())
