"""In-process session harness: a real `StreamingSession` on a loaded backend, events recorded
as the native protocol renders them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from engines.base import SAMPLE_RATE, Audio
from engines.manifest import ModelManifest
from serve.realtime.engine import Transcriber
from serve.realtime.events import SessionEvent
from serve.realtime.model import choose_policy
from serve.realtime.native import dump, render_native
from serve.realtime.protocol import SessionConfig
from serve.realtime.session import StreamingSession
from serve.realtime.settings import RealtimeSettings
from serve.realtime.vad import shared_silero


@dataclass
class Recorder:
    raw: list[SessionEvent] = field(default_factory=list)

    async def emit(self, event: SessionEvent) -> None:
        self.raw.append(event)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [dump(model) for event in self.raw for model in render_native(event)]


def make_session(
    manifest: ModelManifest,
    transcribe: Transcriber,
    config: SessionConfig | None = None,
    settings: RealtimeSettings | None = None,
) -> tuple[StreamingSession, Recorder]:
    settings = settings or RealtimeSettings()
    recorder = Recorder()
    session = StreamingSession(
        session_id="sess_test",
        model=manifest.name,
        capabilities=manifest.capabilities,
        policy=choose_policy(manifest, transcribe, settings.engine_timeout_s),
        config=config or SessionConfig(),
        settings=settings,
        vad_model=shared_silero(),
        emit=recorder.emit,
    )
    return session, recorder


async def feed(
    session: StreamingSession, audio: Audio, speed: float | None, chunk_s: float = 0.1
) -> None:
    """Send audio in chunks, paced at `speed` x real time (None: as fast as possible,
    yielding to the worker between chunks)."""
    step = round(chunk_s * SAMPLE_RATE)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(0, len(audio), step):
        await session.feed(audio[i : i + step])
        if speed is None:
            await asyncio.sleep(0)
        else:
            due = started + (i + step) / SAMPLE_RATE / speed
            await asyncio.sleep(max(0.0, due - loop.time()))


async def run(
    session: StreamingSession, audio: Audio, speed: float | None = None, close: bool = True
) -> None:
    worker = asyncio.create_task(session.run())
    await feed(session, audio, speed)
    if close:
        await session.close("client_request")
        await asyncio.wait_for(worker, 120)
