"""The realtime WebSocket's two wire protocols behind one interface.

A `WireProtocol` turns the client's messages into actions on the session and the session's
events into messages: the native protocol (`protocol.py`, `native.py`) and OpenAI's Realtime
transcription mode (`openai_protocol.py`). The connection holds one of them; a native
connection hands over to the OpenAI protocol on a transcription `session.update` received
before any audio (`upgrade`).
"""

from __future__ import annotations

import abc
import copy
from typing import Any, Protocol

from serve.realtime.events import SessionEvent
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
    parse_command,
)
from serve.realtime.session import StreamingSession, to_ms


class Link(Protocol):
    """What a protocol may do to its connection."""

    session: StreamingSession
    audio_seen: bool

    async def send(self, payload: dict[str, Any]) -> None: ...

    async def problem(self, exc: ProtocolError, event_id: str | None = None) -> None:
        """Tell the client about a message the session could not use."""

    def audio_arrived(self) -> None:
        """Audio was fed to the session (latency telemetry, no model change after it)."""

    def use_model(self, name: str) -> None:
        """Switch the session to another model; raises `ProtocolError` if it cannot."""


class WireProtocol(abc.ABC):
    name: str

    def initial_config(self, config: SessionConfig) -> SessionConfig:
        """The session's starting configuration under this protocol."""
        return config

    @abc.abstractmethod
    def created(self, session: StreamingSession) -> dict[str, Any]:
        """The first message of the connection."""

    def ping(self, session: StreamingSession) -> dict[str, Any] | None:
        """A heartbeat, or None if the protocol has none."""
        return None

    @abc.abstractmethod
    def render(self, event: SessionEvent) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def on_binary(self, data: bytes, link: Link) -> None: ...

    @abc.abstractmethod
    async def on_text(self, data: dict[str, Any], text: str, link: Link) -> None:
        """A JSON text message (`data`, parsed from `text`); raises `ProtocolError`."""

    def upgrade(self, data: dict[str, Any], link: Link) -> WireProtocol | None:
        """The protocol to continue with when this message asks for another one."""
        return None


class NativeWire(WireProtocol):
    name = "native"

    def created(self, session: StreamingSession) -> dict[str, Any]:
        return dump(
            SessionCreatedEvent(
                session_id=session.session_id, model=session.model, config=session.config
            )
        )

    def ping(self, session: StreamingSession) -> dict[str, Any] | None:
        return dump(PingEvent(timestamp_ms=to_ms(session.position)))

    def render(self, event: SessionEvent) -> list[dict[str, Any]]:
        return [dump(model) for model in render_native(event)]

    async def on_binary(self, data: bytes, link: Link) -> None:
        try:
            await link.session.feed_pcm16(data)
        except PcmError as exc:
            raise ProtocolError("invalid_audio", str(exc)) from None
        link.audio_arrived()

    async def on_text(self, data: dict[str, Any], text: str, link: Link) -> None:
        command = parse_command(text)
        session = link.session
        if isinstance(command, SessionConfigure):
            session.configure(command.apply(session.config))
            updated = SessionUpdatedEvent(session_id=session.session_id, config=session.config)
            await link.send(dump(updated))
        elif isinstance(command, NativeCommit):
            if not session.commit():
                raise ProtocolError(
                    "input_audio_buffer_commit_empty", "There is no audio to commit."
                )
        elif isinstance(command, SessionCancel):
            await session.close("cancelled")
        elif isinstance(command, SessionClose):
            await session.close("client_request")

    def upgrade(self, data: dict[str, Any], link: Link) -> WireProtocol | None:
        if not is_transcription_update(data):
            return None
        if link.audio_seen:
            raise ProtocolError(
                "invalid_state", "Switch to transcription mode before sending audio."
            )
        openai = OpenAIWire()
        link.session.configure(openai.initial_config(link.session.config))
        return openai


class OpenAIWire(WireProtocol):
    name = "openai"

    def __init__(self) -> None:
        self.state = OpenAISessionState()
        self.renderer = OpenAIRenderer()

    def initial_config(self, config: SessionConfig) -> SessionConfig:
        return self.state.session_config(config)

    def created(self, session: StreamingSession) -> dict[str, Any]:
        return self._session_event("session.created", session)

    def _session_event(self, kind: str, session: StreamingSession) -> dict[str, Any]:
        described = self.state.describe(session.session_id, session.model, session.config)
        return {"type": kind, "event_id": new_id("event"), "session": described}

    def render(self, event: SessionEvent) -> list[dict[str, Any]]:
        return self.renderer.render(event)

    async def on_binary(self, data: bytes, link: Link) -> None:
        raise ProtocolError(
            "invalid_frame",
            "Transcription mode takes audio in 'input_audio_buffer.append' events.",
        )

    async def on_text(self, data: dict[str, Any], text: str, link: Link) -> None:
        event = parse_client_data(data)
        session = link.session
        try:
            if isinstance(event, InputAudioBufferAppend):
                audio = self.state.decode(event.audio)
                await session.feed_audio(audio, self.state.sample_rate)
                link.audio_arrived()
            elif isinstance(event, InputAudioBufferCommit):
                if not session.commit():
                    raise ProtocolError(
                        "input_audio_buffer_commit_empty", "There is no audio to commit."
                    )
            elif isinstance(event, InputAudioBufferClear):
                session.clear()
                await link.send({"type": "input_audio_buffer.cleared", "event_id": new_id("event")})
            elif isinstance(event, SessionUpdate):
                await self._update(event, link)
        except ProtocolError as exc:
            await link.problem(exc, event.event_id)

    async def _update(self, event: SessionUpdate, link: Link) -> None:
        """Apply a `session.update`; one that fails changes nothing."""
        session = link.session
        saved = (copy.deepcopy(self.state), session.model, session.capabilities, session.policy)
        try:
            await self._apply_update(event, link)
        except ProtocolError:
            self.state = saved[0]
            session.use_model(*saved[1:])
            raise

    async def _apply_update(self, event: SessionUpdate, link: Link) -> None:
        session = link.session
        self.state.update(event.session)
        wanted = self.state.transcription.model
        if wanted and wanted != session.model:
            if link.audio_seen:
                raise ProtocolError(
                    "invalid_state", "The model cannot change after audio was sent.", "model"
                )
            link.use_model(wanted)
        session.configure(self.state.session_config(session.config))
        await link.send(self._session_event("session.updated", session))
