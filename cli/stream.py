"""`theo transcribe FILE --stream` and `theo listen`: one realtime session over `/v1/realtime`
(native protocol, `cli.realtime_client.RealtimeClient`) fed by an audio source, with the
events shown as they arrive (`cli.display.TranscriptPrinter`).

A source is an async iterator of PCM16 LE mono chunks at its `rate`; a file source is paced at
`speed` x real time, and every source waits out the pauses the server asks for with
`session.rate_limit`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack, aclosing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.display import TranscriptPrinter
from cli.realtime_client import RealtimeClient, float_to_pcm16, realtime_url
from engines.base import SAMPLE_RATE, Audio

CHUNK_MS = 100
EVENT_POLL_S = 0.02
CLOSE_TIMEOUT_S = 120.0
Warn = Callable[[str], None]


class StreamError(Exception):
    """The session could not start or ended on an unrecoverable error."""


@dataclass(frozen=True)
class StreamTarget:
    base_url: str
    model: str
    api_key: str | None = None
    language: str | None = None
    hot_words: tuple[str, ...] = ()

    def url(self) -> str:
        query = {"model": self.model}
        if self.language:
            query["language"] = self.language
        return realtime_url(self.base_url, **query)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


@dataclass
class Pacer:
    """Holds back the sender while the server has asked for a pause."""

    resume_at: float = 0.0

    def pause(self, delay_ms: int) -> None:
        self.resume_at = max(self.resume_at, time.monotonic() + delay_ms / 1000)

    async def wait(self) -> float:
        """Sleep out the current pause; returns how long that was."""
        delay = self.resume_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
            return delay
        return 0.0


@dataclass
class StreamSummary:
    finals: list[dict[str, Any]] = field(default_factory=list)
    closed: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(e["text"].strip() for e in self.finals if e["text"].strip())


async def file_chunks(audio: Audio, speed: float, pacer: Pacer) -> AsyncGenerator[bytes, None]:
    """16 kHz audio as PCM16 chunks of `CHUNK_MS`, `speed` x real time, plus server pauses."""
    step = SAMPLE_RATE * CHUNK_MS // 1000
    started = time.monotonic()
    for index, offset in enumerate(range(0, len(audio), step)):
        started += await pacer.wait()
        yield float_to_pcm16(audio[offset : offset + step])
        due = started + (index + 1) * CHUNK_MS / 1000 / speed
        await asyncio.sleep(max(0.0, due - time.monotonic()))


class EventPump:
    """Shows the session's events as they arrive and reacts to the ones that steer sending."""

    def __init__(
        self, client: RealtimeClient, printer: TranscriptPrinter, pacer: Pacer, warn: Warn
    ) -> None:
        self.client = client
        self.printer = printer
        self.pacer = pacer
        self.warn = warn
        self.summary = StreamSummary()
        self.fatal: str | None = None
        self._seen = 0
        self._stopped = asyncio.Event()

    def drain(self) -> None:
        received = self.client.record.received
        while self._seen < len(received):
            self.handle(received[self._seen].event)
            self._seen += 1

    def handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "transcript.partial":
            self.printer.partial(event.get("stable", ""), event.get("unstable", event["text"]))
        elif kind == "transcript.final":
            self.summary.finals.append(event)
            self.printer.final(event["text"], event["start_ms"], event["end_ms"])
        elif kind == "session.rate_limit":
            self.pacer.pause(int(event["delay_ms"]))
        elif kind == "session.frames_dropped":
            self.note(event["message"])
        elif kind == "error":
            if event.get("recoverable"):
                self.note(f"{event['code']}: {event['message']}")
            else:
                self.fatal = f"{event['code']}: {event['message']}"
        elif kind == "session.closed":
            self.summary.closed = event

    def note(self, message: str) -> None:
        self.printer.clear()
        self.summary.warnings.append(message)
        self.warn(message)

    async def run(self) -> None:
        """Until the connection closes or `stop` is called; then the last events."""
        while not (self.client.closed or self._stopped.is_set()):
            self.drain()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), EVENT_POLL_S)
        self.drain()

    def stop(self) -> None:
        self._stopped.set()


async def _expect(client: RealtimeClient, kind: str, pump: EventPump) -> None:
    try:
        await client.wait_for(kind, timeout=30)
    except TimeoutError:
        pump.drain()
        reason = pump.fatal or client.record.close_reason or f"no {kind} from the server"
        raise StreamError(reason) from None


async def _open(stack: AsyncExitStack, target: StreamTarget) -> RealtimeClient:
    from websockets.exceptions import InvalidHandshake

    try:
        return await stack.enter_async_context(RealtimeClient(target.url(), target.headers()))
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise StreamError(f"cannot open a realtime session at {target.url()} ({exc})") from None


async def stream_session(
    target: StreamTarget,
    chunks: AsyncGenerator[bytes, None],
    rate: int,
    printer: TranscriptPrinter,
    pacer: Pacer,
    warn: Warn,
) -> StreamSummary:
    """Open a session, configure it, send every chunk, then close it and wait for its finals."""
    from websockets.exceptions import ConnectionClosed

    async with AsyncExitStack() as stack:
        source = await stack.enter_async_context(aclosing(chunks))
        client = await _open(stack, target)
        pump = EventPump(client, printer, pacer, warn)
        watcher = asyncio.create_task(pump.run())

        async def stop_watching() -> None:
            pump.stop()
            await watcher
            printer.clear()

        stack.push_async_callback(stop_watching)
        try:
            await _expect(client, "session.created", pump)
            configure = {"type": "session.configure", "input_sample_rate": rate}
            await client.send_json({**configure, "hot_words": list(target.hot_words)})
            await _expect(client, "session.updated", pump)
            async for chunk in source:
                if pump.fatal or client.closed:
                    break
                await client.send_raw(chunk)
            if not client.closed:
                await client.close_session(timeout=CLOSE_TIMEOUT_S)
        except (ConnectionClosed, TimeoutError):
            pass  # the server ended the session: `pump` says how
    if pump.fatal:
        raise StreamError(pump.fatal)
    if pump.summary.closed is None:
        reason = client.record.close_reason or "the server closed the session"
        raise StreamError(f"the session ended early ({client.record.close_code}: {reason})")
    return pump.summary


async def stream_file(
    target: StreamTarget, path: Path, speed: float, printer: TranscriptPrinter, warn: Warn
) -> StreamSummary:
    """Decode `path` (any format PyAV reads) to 16 kHz and stream it at `speed` x real time."""
    from serve.audio import decode_audio_bytes
    from serve.errors import InvalidAudioError

    try:
        audio = await asyncio.to_thread(decode_audio_bytes, path.read_bytes())
    except InvalidAudioError as exc:
        raise StreamError(f"{path}: {exc.message}") from None
    pacer = Pacer()
    chunks = file_chunks(audio, speed, pacer)
    return await stream_session(target, chunks, SAMPLE_RATE, printer, pacer, warn)


def run_file(
    target: StreamTarget, path: Path, speed: float, *, timestamps: bool, warn: Warn
) -> StreamSummary:
    """`theo transcribe FILE --stream`: the transcript on stdout as it comes."""
    printer = TranscriptPrinter.for_stream(sys.stdout, timestamps=timestamps)
    return asyncio.run(stream_file(target, path, speed, printer, warn))
