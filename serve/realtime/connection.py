"""One WebSocket connection running one realtime session (ASGI/Starlette transport).

A reader task queues incoming messages; the main loop hands them to the connection's wire
protocol (`wire.py`: native or OpenAI transcription mode), which acts on the session, and
closes the session after `inactivity_timeout_ms` without a message; the session's worker sends
events back through the protocol's renderer. Protocols with heartbeats get them every
`ping_interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from serve.errors import TheoError
from serve.realtime.events import Problem, SessionEvent
from serve.realtime.gate import PartialGate
from serve.realtime.model import SessionModel
from serve.realtime.openai_protocol import new_id
from serve.realtime.protocol import ProtocolError, SessionConfig, load_json_object
from serve.realtime.registry import SESSIONS, SessionEntry, SessionRegistry
from serve.realtime.session import StreamingSession, to_ms
from serve.realtime.settings import RealtimeSettings
from serve.realtime.telemetry import SessionTelemetry
from serve.realtime.vad import shared_silero
from serve.realtime.wire import WireProtocol

logger = logging.getLogger(__name__)

NORMAL_CLOSURE = 1000
POLICY_VIOLATION = 1008
UNEXPECTED_MESSAGE_ERROR = "The message could not be processed; the session goes on."

Resolver = Callable[[str], SessionModel]
"""Model name -> model; raises `ModelNotFoundError`."""

_WORKER_DONE: dict[str, Any] = {"type": "theo.worker_done"}


class RealtimeConnection:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        model: SessionModel,
        resolve: Resolver,
        settings: RealtimeSettings,
        protocol: WireProtocol,
        config: SessionConfig,
        partial_gate: PartialGate | None = None,
        registry: SessionRegistry = SESSIONS,
        telemetry: SessionTelemetry | None = None,
    ) -> None:
        self.websocket = websocket
        self.telemetry = telemetry
        self.resolve = resolve
        self.settings = settings
        self.protocol = protocol
        self.registry = registry
        self.session = StreamingSession(
            session_id=new_id("sess"),
            model=model.name,
            capabilities=model.manifest.capabilities,
            policy=model.policy(settings.engine_timeout_s),
            config=protocol.initial_config(config),
            settings=settings,
            vad_model=shared_silero(),
            emit=self.emit,
            partial_gate=partial_gate,
        )
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self._gone = False
        self.audio_seen = False

    # -- what the protocol may do (`wire.Link`) ------------------------------------------------
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
        for payload in self.protocol.render(event):
            await self.send(payload)

    async def problem(self, exc: ProtocolError, event_id: str | None = None) -> None:
        await self.emit(Problem(exc.code, exc.message, True, exc.param, event_id))

    def audio_arrived(self) -> None:
        self.audio_seen = True
        if self.telemetry is not None:
            self.telemetry.audio_received(self.session.position)

    def use_model(self, name: str) -> None:
        try:
            model = self.resolve(name)
            policy = model.policy(self.settings.engine_timeout_s)
        except TheoError as exc:
            raise ProtocolError(exc.code or "invalid_value", exc.message, "model") from None
        self.session.use_model(model.name, model.manifest.capabilities, policy)

    # -- the connection ----------------------------------------------------------------------
    async def serve(self) -> None:
        session = self.session
        self.registry.add(SessionEntry(session, self.protocol.name))
        if self.telemetry is not None:
            self.telemetry.opened(session.session_id)  # before the tasks: they inherit its ids
        worker = asyncio.create_task(session.run(), name=f"realtime-{session.session_id}")
        worker.add_done_callback(lambda _: self._inbox.put_nowait(_WORKER_DONE))
        reader = asyncio.create_task(self._read())
        pinger = asyncio.create_task(self._ping())
        try:
            await self.send(self.protocol.created(session))
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
            ping = self.protocol.ping(self.session)
            if ping is not None:
                await self.send(ping)

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
            await self.protocol.on_binary(data, self)
        elif text is not None:
            parsed = load_json_object(text)
            upgraded = self.protocol.upgrade(parsed, self)
            if upgraded is not None:
                self.protocol = upgraded
            await self.protocol.on_text(parsed, text, self)
