"""Client traffic for the fault tests: REST transcriptions in a loop and a realtime session,
each outcome recorded with its time, so that a test can say what clients saw around a fault."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np

from cli.realtime_client import RealtimeClient, realtime_url
from tests.conftest import API_KEY
from tests.realtime.helpers import clip_audio, silence
from tests.support import clips

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
JFK = clips()["jfk.wav"].path.read_bytes()


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    model: str
    status: int | None
    """HTTP status, None when the connection failed."""
    detail: str
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def retryable(self) -> bool:
        """A 503 with Retry-After in the OpenAI error shape: a client knows to try again."""
        return self.status == 503 and self.retry_after is not None


@dataclass
class RestLoad:
    """`concurrency` loops, each posting JFK to the next of `models` until stopped."""

    urls: Sequence[str]
    models: Sequence[str]
    concurrency: int = 2
    timeout_s: float = 120
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _loop(self, index: int) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_s, headers=HEADERS) as client:
            turn = index
            while not self._stop.is_set():
                url = self.urls[turn % len(self.urls)]
                model = self.models[turn % len(self.models)]
                turn += 1
                started = time.monotonic()
                try:
                    reply = await client.post(
                        f"{url}/v1/audio/transcriptions",
                        data={"model": model},
                        files={"file": ("jfk.wav", JFK)},
                    )
                    outcome = Outcome(
                        started, time.monotonic(), model, reply.status_code,
                        reply.text[:300], reply.headers.get("retry-after"),
                    )  # fmt: skip
                except httpx.HTTPError as exc:
                    outcome = Outcome(started, time.monotonic(), model, None, repr(exc))
                self.outcomes.append(outcome)
                if not outcome.ok:
                    await asyncio.sleep(0.5)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RestLoad]:
        tasks = [asyncio.create_task(self._loop(i)) for i in range(self.concurrency)]
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def after(self, moment: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.started >= moment]


async def wait_until_served(
    url: str, model: str, timeout_s: float = 180, in_a_row: int = 3
) -> float:
    """Seconds until `in_a_row` consecutive transcriptions of `model` succeed through `url`."""
    started = time.monotonic()
    streak = 0
    async with httpx.AsyncClient(timeout=60, headers=HEADERS) as client:
        while time.monotonic() - started < timeout_s:
            try:
                reply = await client.post(
                    f"{url}/v1/audio/transcriptions",
                    data={"model": model},
                    files={"file": ("jfk.wav", JFK)},
                )
                streak = streak + 1 if reply.status_code == 200 else 0
            except httpx.HTTPError:
                streak = 0
            if streak >= in_a_row:
                return time.monotonic() - started
            if not streak:
                await asyncio.sleep(0.5)
    raise TimeoutError(f"{model} not served through {url} within {timeout_s:.0f} s")


ONE_UTTERANCE = {"type": "session.configure", "silence_timeout_ms": 2000}


def speech(seconds: float) -> np.ndarray:
    return np.concatenate(
        [silence(0.3), clip_audio("jfk.wav")[: int(16_000 * seconds)], silence(2.5)]
    ).astype(np.float32)


def realtime_session(url: str, model: str) -> RealtimeClient:
    return RealtimeClient(realtime_url(url, model=model, language="en"), HEADERS)
