"""One WebSocket connection running one realtime session (ASGI/Starlette transport).

A reader task queues incoming messages; the main loop applies them to the session (audio
frames, commands) and closes the session after `inactivity_timeout_ms` without a message; the
session's worker sends events back through `send`. The native protocol gets `session.ping`
heartbeats; a native connection switches to OpenAI transcription mode on a transcription
`session.update` received before any audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from engines.manifest import ModelManifest
from serve.errors import TheoError
from serve.realtime.engine import Transcriber
from serve.realtime.events import Problem, SessionEvent
from serve.realtime.gate import PartialGate
from serve.realtime.native import dump, render_native
from serve.realtime.openai_protocol import (
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    OpenAIRenderer,
    OpenAISessionState,
    SessionUpdate,
    is_transcription_update,
    new_id,
    parse_client_data,
)
from serve.realtime.pcm import PcmError
from serve.realtime.policy import choose_policy
from serve.realtime.protocol import (
    InputAudioBufferCommit as NativeCommit,
)
from serve.realtime.protocol import (
    PingEvent,
    ProtocolError,
    SessionCancel,
    SessionClose,
    SessionConfig,
    SessionConfigure,
    SessionCreatedEvent,
    SessionUpdatedEvent,
    load_json_object,
    parse_command,
)
from serve.realtime.registry import SESSIONS, SessionEntry, SessionRegistry
from serve.realtime.session import StreamingSession, to_ms
from serve.realtime.settings import RealtimeSettings
from serve.realtime.vad import shared_silero
from serve.telemetry.realtime import SessionTelemetry

logger = logging.getLogger(__name__)

NORMAL_CLOSURE = 1000
POLICY_VIOLATION = 1008
UNEXPECTED_MESSAGE_ERROR = "The message could not be processed; the session goes on."


class Mode(StrEnum):
    NATIVE = "native"
    OPENAI = "openai"


@dataclass(frozen=True)
class ModelChoice:
    name: str
    manifest: ModelManifest
    transcribe: Transcriber
    handle: Any = None
    """The engine deployment handle (native streaming engines need it)."""


Resolver = Callable[[str], ModelChoice]
"""Model name -> model; raises `ModelNotFoundError`."""

_WORKER_DONE: dict[str, Any] = {"type": "theo.worker_done"}


class RealtimeConnection:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        choice: ModelChoice,
        resolve: Resolver,
        settings: RealtimeSettings,
        mode: Mode,
        config: SessionConfig,
        partial_gate: PartialGate | None = None,
        registry: SessionRegistry = SESSIONS,
        telemetry: SessionTelemetry | None = None,
    ) -> None:
        self.websocket = websocket
        self.telemetry = telemetry
        self.resolve = resolve
        self.settings = settings
        self.mode = mode
        self.registry = registry
        self.openai = OpenAISessionState()
        self.renderer = OpenAIRenderer()
        if mode is Mode.OPENAI:
            config = self.openai.session_config(config)
        self.session = StreamingSession(
            session_id=new_id("sess"),
            model=choice.name,
            capabilities=choice.manifest.capabilities,
            policy=choose_policy(
                choice.manifest, choice.transcribe, settings.engine_timeout_s, choice.handle
            ),
            config=config,
            settings=settings,
            vad_model=shared_silero(),
            emit=self.emit,
            partial_gate=partial_gate,
        )
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self._gone = False
        self._audio_seen = False

    # -- sending -----------------------------------------------------------------------------
    async def send(self, payload: dict[str, Any]) -> None:
        if self._gone:
            return
        async with self._send_lock:
            try:
                await self.websocket.send_text(json.dumps(payload))
            except Exception as exc:
                logger.info("session %s: send failed: %r", self.session.session_id, exc)
                self._gone = True

    async def emit(self, event: SessionEvent) -> None:
        if self.telemetry is not None:
            self.telemetry.observe(event)
        if self.mode is Mode.OPENAI:
            for payload in self.renderer.render(event):
                await self.send(payload)
        else:
            for model in render_native(event):
                await self.send(dump(model))

    async def problem(self, exc: ProtocolError, event_id: str | None = None) -> None:
        await self.emit(Problem(exc.code, exc.message, True, exc.param, event_id))

    async def send_created(self) -> None:
        session = self.session
        if self.mode is Mode.OPENAI:
            described = self.openai.describe(session.session_id, session.model, session.config)
            await self.send(
                {"type": "session.created", "event_id": new_id("event"), "session": described}
            )
        else:
            created = SessionCreatedEvent(
                session_id=session.session_id, model=session.model, config=session.config
            )
            await self.send(dump(created))

    # -- the connection ----------------------------------------------------------------------
    async def serve(self) -> None:
        session = self.session
        self.registry.add(SessionEntry(session, self.mode.value))
        if self.telemetry is not None:
            self.telemetry.opened(session.session_id)  # before the tasks: they inherit its ids
        worker = asyncio.create_task(session.run(), name=f"realtime-{session.session_id}")
        worker.add_done_callback(lambda _: self._inbox.put_nowait(_WORKER_DONE))
        reader = asyncio.create_task(self._read())
        pinger = asyncio.create_task(self._ping())
        try:
            await self.send_created()
            await self._loop()
            if self._gone:
                session.close_reason = "client_disconnect"
                worker.cancel()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(worker), self.settings.close_timeout_s)
        finally:
            for task in (worker, reader, pinger):
                task.cancel()
            await asyncio.gather(worker, reader, pinger, return_exceptions=True)
            self.registry.remove(session.session_id)
            if self.telemetry is not None:
                self.telemetry.closed()
            await self._close_socket(NORMAL_CLOSURE)
            logger.info(
                "session %s closed (%s): %d ms of audio, %d finals",
                session.session_id,
                session.close_reason,
                to_ms(session.position),
                session.segments_transcribed,
            )

    async def _close_socket(self, code: int) -> None:
        if self._gone or self.websocket.application_state is WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(Exception):
            await self.websocket.close(code)

    async def _read(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                await self._inbox.put(dict(message))
                if message["type"] == "websocket.disconnect":
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            await self._inbox.put({"type": "websocket.disconnect", "code": 1006})

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval_s)
            if self.mode is Mode.NATIVE:
                await self.send(dump(PingEvent(timestamp_ms=to_ms(self.session.position))))

    async def _loop(self) -> None:
        while True:
            timeout = self.session.config.inactivity_timeout_ms / 1000
            try:
                message = await asyncio.wait_for(self._inbox.get(), timeout)
            except TimeoutError:
                await self.session.close("inactivity_timeout")
                return
            if message is _WORKER_DONE:
                return
            if message["type"] == "websocket.disconnect":
                self._gone = True
                return
            try:
                await self._on_message(message)
            except ProtocolError as exc:
                await self.problem(exc)
            except Exception:
                # Reported, never silent; the session goes on with the next message.
                logger.exception("session %s: message failed", self.session.session_id)
                await self.problem(ProtocolError("internal_error", UNEXPECTED_MESSAGE_ERROR))

    async def _on_message(self, message: dict[str, Any]) -> None:
        data: bytes | None = message.get("bytes")
        text: str | None = message.get("text")
        size = len(data) if data is not None else len(text or "")
        if size > self.settings.max_frame_bytes:
            raise ProtocolError(
                "frame_too_large",
                f"Messages are limited to {self.settings.max_frame_bytes} bytes; got {size}.",
            )
        if data is not None:
            if self.mode is Mode.OPENAI:
                raise ProtocolError(
                    "invalid_frame",
                    "Transcription mode takes audio in 'input_audio_buffer.append' events.",
                )
            try:
                await self.session.feed_pcm16(data)
            except PcmError as exc:
                raise ProtocolError("invalid_audio", str(exc)) from None
            self._audio_seen = True
            self._audio_arrived()
        elif text is not None:
            await self._on_text(text)

    def _audio_arrived(self) -> None:
        if self.telemetry is not None:
            self.telemetry.audio_received(self.session.position)

    async def _on_text(self, text: str) -> None:
        data = load_json_object(text)
        if self.mode is Mode.NATIVE and is_transcription_update(data):
            if self._audio_seen:
                raise ProtocolError(
                    "invalid_state", "Switch to transcription mode before sending audio."
                )
            self.mode = Mode.OPENAI
            self.session.configure(self.openai.session_config(self.session.config))
        if self.mode is Mode.OPENAI:
            await self._on_openai(data)
        else:
            await self._on_native(text)

    async def _on_native(self, text: str) -> None:
        command = parse_command(text)
        session = self.session
        if isinstance(command, SessionConfigure):
            session.configure(command.apply(session.config))
            updated = SessionUpdatedEvent(session_id=session.session_id, config=session.config)
            await self.send(dump(updated))
        elif isinstance(command, NativeCommit):
            if not session.commit():
                raise ProtocolError(
                    "input_audio_buffer_commit_empty", "There is no audio to commit."
                )
        elif isinstance(command, SessionCancel):
            await session.close("cancelled")
        elif isinstance(command, SessionClose):
            await session.close("client_request")

    async def _on_openai(self, data: dict[str, Any]) -> None:
        event = parse_client_data(data)
        session = self.session
        try:
            if isinstance(event, InputAudioBufferAppend):
                audio = self.openai.decode(event.audio)
                await session.feed_audio(audio, self.openai.sample_rate)
                self._audio_seen = True
                self._audio_arrived()
            elif isinstance(event, InputAudioBufferCommit):
                if not session.commit():
                    raise ProtocolError(
                        "input_audio_buffer_commit_empty", "There is no audio to commit."
                    )
            elif isinstance(event, InputAudioBufferClear):
                session.clear()
                await self.send({"type": "input_audio_buffer.cleared", "event_id": new_id("event")})
            elif isinstance(event, SessionUpdate):
                await self._update_openai(event)
        except ProtocolError as exc:
            await self.problem(exc, event.event_id)

    async def _update_openai(self, event: SessionUpdate) -> None:
        """Apply a `session.update`; one that fails changes nothing."""
        session = self.session
        saved = (copy.deepcopy(self.openai), session.model, session.capabilities, session.policy)
        try:
            await self._apply_openai_update(event)
        except ProtocolError:
            self.openai, session.model, session.capabilities, session.policy = saved
            raise

    async def _apply_openai_update(self, event: SessionUpdate) -> None:
        session = self.session
        self.openai.update(event.session)
        wanted = self.openai.transcription.model
        if wanted and wanted != session.model:
            if self._audio_seen:
                raise ProtocolError(
                    "invalid_state", "The model cannot change after audio was sent.", "model"
                )
            try:
                choice = self.resolve(wanted)
                policy = choose_policy(
                    choice.manifest,
                    choice.transcribe,
                    self.settings.engine_timeout_s,
                    choice.handle,
                )
            except TheoError as exc:
                raise ProtocolError(exc.code or "invalid_value", exc.message, "model") from None
            session.model, session.capabilities, session.policy = (
                choice.name,
                choice.manifest.capabilities,
                policy,
            )
        session.configure(self.openai.session_config(session.config))
        described = self.openai.describe(session.session_id, session.model, session.config)
        await self.send(
            {"type": "session.updated", "event_id": new_id("event"), "session": described}
        )
