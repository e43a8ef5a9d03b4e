"""A small native-protocol client: stream 16 kHz audio over `/v1/realtime` at a chosen pace and
record every event with its arrival time (used by the end-to-end tests and the benchmark).

`websockets` is imported lazily: the client is not needed to serve.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np
import numpy.typing as npt

from engines.base import SAMPLE_RATE, Audio


def float_to_pcm16(audio: npt.NDArray[np.floating]) -> bytes:
    """float samples in [-1, 1] -> little-endian PCM16 bytes (clipped), as the socket takes."""
    scaled = np.clip(np.asarray(audio, dtype=np.float64) * 32768.0, -32768, 32767)
    return np.round(scaled).astype("<i2").tobytes()


def realtime_url(base_url: str, **query: str) -> str:
    """`http://host:port` -> `ws://host:port/v1/realtime?...`."""
    ws = "ws" + base_url[len("http") :] if base_url.startswith("http") else base_url
    return f"{ws.rstrip('/')}/v1/realtime?{urlencode(query)}"


@dataclass
class Received:
    at: float
    """`time.monotonic()` when the event arrived."""
    event: dict[str, Any]


@dataclass
class StreamRecord:
    received: list[Received] = field(default_factory=list)
    sent: list[tuple[int, float]] = field(default_factory=list)
    """(stream position in ms after the chunk, monotonic time it was sent)."""
    close_code: int | None = None
    close_reason: str = ""

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r.event for r in self.received]

    def of_type(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.event["type"] == kind]

    def sent_time(self, position_ms: int) -> float:
        """When the audio at `position_ms` had been sent."""
        for position, at in self.sent:
            if position >= position_ms:
                return at
        return self.sent[-1][1]


class RealtimeClient:
    """One connection. Use `async with RealtimeClient(url, headers) as client`."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.record = StreamRecord()
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Condition()
        self._position = 0

    async def __aenter__(self) -> RealtimeClient:
        from websockets.asyncio.client import connect

        self._ws = await connect(
            self.url, additional_headers=self.headers, max_size=None, ping_interval=None
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self._ws:
                event = json.loads(message)
                async with self._arrived:
                    self.record.received.append(Received(time.monotonic(), event))
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.record.close_code = self._ws.close_code
            self.record.close_reason = self._ws.close_reason or ""
            async with self._arrived:
                self._arrived.notify_all()

    @property
    def closed(self) -> bool:
        return self._reader is not None and self._reader.done()

    async def wait_for(self, kind: str, timeout: float = 30.0, count: int = 1) -> dict[str, Any]:
        """The `count`-th event of type `kind` (raises TimeoutError)."""

        def found() -> bool:
            return len(self.record.of_type(kind)) >= count or self.closed

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(found), timeout)
        matches = self.record.of_type(kind)
        if len(matches) < count:
            raise TimeoutError(f"connection closed before {kind} #{count}")
        return matches[count - 1].event

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(payload))

    async def send_raw(self, data: bytes | str) -> None:
        await self._ws.send(data)

    async def stream(self, audio: Audio, speed: float, chunk_ms: int = 100) -> None:
        """Send 16 kHz audio as PCM16 chunks, `speed` x real time."""
        step = SAMPLE_RATE * chunk_ms // 1000
        started = time.monotonic()
        sent_before = self._position
        for i in range(0, len(audio), step):
            chunk = audio[i : i + step]
            await self._ws.send(float_to_pcm16(chunk))
            self._position += len(chunk) * 1000 // SAMPLE_RATE
            self.record.sent.append((self._position, time.monotonic()))
            due = started + (self._position - sent_before) / 1000 / speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def close_session(self, timeout: float = 60.0) -> dict[str, Any]:
        await self.send_json({"type": "session.close"})
        return await self.wait_for("session.closed", timeout)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self._ws.transport.abort()
