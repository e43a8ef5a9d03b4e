"""OpenAI Realtime API, transcription mode (`?intent=transcription` or a `session.update` whose
session `type` is `transcription`), on the same session engine.

Client events: `session.update`, `input_audio_buffer.append|commit|clear`. Server events:
`session.created|updated`, `input_audio_buffer.speech_started|speech_stopped|committed|cleared`,
`conversation.item.input_audio_transcription.delta|completed|failed`, `error`. Deltas are
append-only: they concatenate to the completed transcript; a delta's `unstable` (a Theo
extension) is the newest hypothesis' unconfirmed tail, shown after them.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from engines.base import Audio
from serve.languages import validate_language
from serve.realtime.events import (
    FramesDropped,
    PartialTranscript,
    Problem,
    SegmentClosed,
    SegmentDone,
    SegmentFailed,
    SessionEvent,
    SpeechStarted,
)
from serve.realtime.pcm import alaw_to_float, mulaw_to_float, pcm16_to_float
from serve.realtime.protocol import ProtocolError, SessionConfig, load_json_object, validate_config

logger = logging.getLogger(__name__)

OPENAI_PCM_RATE = 24_000
G711_RATE = 8_000


# -- client events -------------------------------------------------------------------------
class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PcmFormat(_Lenient):
    type: Literal["audio/pcm"] = "audio/pcm"
    rate: Literal[24000] = 24000


class PcmuFormat(_Lenient):
    type: Literal["audio/pcmu"] = "audio/pcmu"


class PcmaFormat(_Lenient):
    type: Literal["audio/pcma"] = "audio/pcma"


AudioFormat = Annotated[PcmFormat | PcmuFormat | PcmaFormat, Field(discriminator="type")]


class TranscriptionOptions(_Lenient):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        return validate_language(value)


class ServerVad(_Lenient):
    type: Literal["server_vad"] = "server_vad"
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=2_000)
    silence_duration_ms: int | None = Field(default=None, ge=100, le=10_000)


class AudioInput(_Lenient):
    format: AudioFormat | None = None
    transcription: TranscriptionOptions | None = None
    turn_detection: ServerVad | None = None


class AudioConfig(_Lenient):
    input: AudioInput | None = None


class TranscriptionSession(_Lenient):
    type: Literal["transcription"] = "transcription"
    audio: AudioConfig | None = None


class SessionUpdate(_Lenient):
    type: Literal["session.update"]
    event_id: str | None = None
    session: TranscriptionSession


class InputAudioBufferAppend(_Lenient):
    type: Literal["input_audio_buffer.append"]
    event_id: str | None = None
    audio: str


class InputAudioBufferCommit(_Lenient):
    type: Literal["input_audio_buffer.commit"]
    event_id: str | None = None


class InputAudioBufferClear(_Lenient):
    type: Literal["input_audio_buffer.clear"]
    event_id: str | None = None


ClientEvent = Annotated[
    SessionUpdate | InputAudioBufferAppend | InputAudioBufferCommit | InputAudioBufferClear,
    Field(discriminator="type"),
]
_CLIENT_EVENTS: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)
CLIENT_EVENT_TYPES = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
    }
)


def is_transcription_update(data: dict[str, Any]) -> bool:
    """A `session.update` asking for a transcription session (switches a native connection)."""
    session = data.get("session")
    return (
        data.get("type") == "session.update"
        and isinstance(session, dict)
        and session.get("type") == "transcription"
    )


def parse_client_event(text: str) -> ClientEvent:
    data = load_json_object(text)
    return parse_client_data(data)


def parse_client_data(data: dict[str, Any]) -> ClientEvent:
    kind = data["type"]
    if kind not in CLIENT_EVENT_TYPES:
        raise ProtocolError("unknown_event_type", f"Unknown event type '{kind}'.", "type")
    try:
        return _CLIENT_EVENTS.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if p not in CLIENT_EVENT_TYPES)
        detail = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
        raise ProtocolError(
            "invalid_value", f"Invalid value for '{param}': {detail}.", param
        ) from None


# -- the session's OpenAI-side configuration ------------------------------------------------
@dataclass
class OpenAISessionState:
    format: PcmFormat | PcmuFormat | PcmaFormat = field(default_factory=PcmFormat)
    transcription: TranscriptionOptions = field(default_factory=TranscriptionOptions)
    turn_detection: ServerVad | None = field(default_factory=ServerVad)

    def update(self, session: TranscriptionSession) -> None:
        audio_input = session.audio.input if session.audio else None
        if audio_input is None:
            return
        if audio_input.format is not None:
            self.format = audio_input.format
        if audio_input.transcription is not None:
            changes = audio_input.transcription.model_dump(exclude_unset=True)
            self.transcription = self.transcription.model_copy(update=changes)
        if "turn_detection" in audio_input.model_fields_set:
            self.turn_detection = audio_input.turn_detection

    @property
    def sample_rate(self) -> int:
        return OPENAI_PCM_RATE if isinstance(self.format, PcmFormat) else G711_RATE

    def decode(self, payload: str) -> Audio:
        """Base64 audio of `input_audio_buffer.append` -> float32 at `sample_rate`."""
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("invalid_audio", "'audio' is not valid base64.", "audio") from None
        if isinstance(self.format, PcmuFormat):
            return mulaw_to_float(data)
        if isinstance(self.format, PcmaFormat):
            return alaw_to_float(data)
        try:
            return pcm16_to_float(data)
        except ValueError as exc:
            raise ProtocolError("invalid_audio", str(exc), "audio") from None

    def session_config(self, base: SessionConfig) -> SessionConfig:
        vad = self.turn_detection
        changes: dict[str, Any] = {
            "language": self.transcription.language or None,
            "prompt": self.transcription.prompt or None,
            "vad_enabled": vad is not None,
            "enable_itn": False,
        }
        if vad is not None:
            changes["vad_threshold"] = vad.threshold
            if vad.prefix_padding_ms is not None:
                changes["prefix_padding_ms"] = vad.prefix_padding_ms
            if vad.silence_duration_ms is not None:
                changes["silence_timeout_ms"] = vad.silence_duration_ms
        return validate_config({**base.model_dump(), **changes})

    def describe(self, session_id: str, model: str, config: SessionConfig) -> dict[str, Any]:
        """The session object of `session.created` / `session.updated`."""
        turn_detection = None
        if self.turn_detection is not None:
            turn_detection = {
                "type": "server_vad",
                "threshold": config.vad_threshold if config.vad_threshold is not None else 0.5,
                "prefix_padding_ms": config.prefix_padding_ms,
                "silence_duration_ms": config.silence_timeout_ms,
            }
        return {
            "id": session_id,
            "object": "realtime.transcription_session",
            "type": "transcription",
            "audio": {
                "input": {
                    "format": self.format.model_dump(),
                    "noise_reduction": None,
                    "transcription": {
                        "model": model,
                        "language": config.language,
                        "prompt": config.prompt or "",
                    },
                    "turn_detection": turn_detection,
                }
            },
            "include": [],
        }


# -- server events -------------------------------------------------------------------------
def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def error_event(problem: Problem) -> dict[str, Any]:
    error_type = "invalid_request_error" if problem.recoverable else "server_error"
    return {
        "type": "error",
        "event_id": new_id("event"),
        "error": {
            "type": error_type,
            "code": problem.code,
            "message": problem.message,
            "param": problem.param,
            "event_id": problem.event_id,
        },
    }


class OpenAIRenderer:
    """Session events -> OpenAI events. Keeps the conversation item of the open utterance, the
    committed items waiting for their transcripts (in order), and the transcript text already
    sent as deltas per item."""

    def __init__(self) -> None:
        self._item: str | None = None
        self._previous_item: str | None = None
        self._committed: deque[str] = deque()
        self._sent: dict[str, str] = {}
        self._unstable = ""

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": new_id("event"), **fields}

    def _current_item(self) -> str:
        if self._item is None:
            self._item = new_id("item")
        return self._item

    def _delta(self, item: str, text: str, unstable: str | None) -> list[dict[str, Any]]:
        """The part of `text` not sent yet for `item`; `unstable` (partials): the text to show
        after it (a Theo extension: OpenAI clients read `delta` and ignore it)."""
        sent = self._sent.get(item, "")
        if not text.startswith(sent):
            logger.warning("transcript is not an extension of the deltas sent; not resent")
            return []
        delta = text[len(sent) :]
        self._sent[item] = text
        fields: dict[str, Any] = {"item_id": item, "content_index": 0, "delta": delta}
        if unstable is not None:
            if not delta and unstable == self._unstable:
                return []
            self._unstable = unstable
            fields["unstable"] = unstable
        elif not delta:
            return []
        return [self._event("conversation.item.input_audio_transcription.delta", **fields)]

    def _commit(self, speech_end_ms: int | None) -> list[dict[str, Any]]:
        item = self._current_item()
        out = []
        if speech_end_ms is not None:
            out.append(
                self._event(
                    "input_audio_buffer.speech_stopped", audio_end_ms=speech_end_ms, item_id=item
                )
            )
        out.append(
            self._event(
                "input_audio_buffer.committed", item_id=item, previous_item_id=self._previous_item
            )
        )
        self._committed.append(item)
        self._previous_item, self._item, self._unstable = item, None, ""
        return out

    def _transcribed(self) -> str:
        """The item the next final belongs to: the oldest committed one."""
        return self._committed.popleft() if self._committed else self._current_item()

    def render(self, event: SessionEvent) -> list[dict[str, Any]]:
        if isinstance(event, SpeechStarted):
            return [
                self._event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=event.audio_start_ms,
                    item_id=self._current_item(),
                )
            ]
        if isinstance(event, PartialTranscript):
            if not event.text and (self._item is None or not self._unstable):
                return []
            stable = event.stable
            unstable = f" {event.unstable}" if stable and event.unstable else event.unstable
            return self._delta(self._current_item(), stable, unstable)
        if isinstance(event, SegmentClosed):
            return self._commit(event.speech_end_ms)
        if isinstance(event, SegmentDone):
            item = self._transcribed()
            text = event.final.text if event.final is not None else ""
            out = self._delta(item, text, None)
            seconds = (event.final.audio_ms if event.final is not None else 0) / 1000
            out.append(
                self._event(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=item,
                    content_index=0,
                    transcript=self._sent.pop(item, ""),
                    usage={"type": "duration", "seconds": seconds},
                )
            )
            return out
        if isinstance(event, SegmentFailed):
            item = self._transcribed()
            self._sent.pop(item, None)
            return [
                self._event(
                    "conversation.item.input_audio_transcription.failed",
                    item_id=item,
                    content_index=0,
                    error={
                        "type": "server_error",
                        "code": "engine_unavailable",
                        "message": event.message,
                        "param": None,
                    },
                )
            ]
        if isinstance(event, Problem):
            return [error_event(event)]
        if isinstance(event, FramesDropped):
            message = f"{event.dropped_ms} ms of audio were dropped: the session's buffer is full."
            return [error_event(Problem("frames_dropped", message))]
        return []
