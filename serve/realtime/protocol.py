"""The native realtime protocol (`GET /v1/realtime`): client commands, server events, config.

Binary frames carry PCM16 LE mono at `input_sample_rate`; text frames carry the JSON commands
below. Every server event is one of the `*Event` models, sent as JSON.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from serve.languages import validate_language
from serve.realtime.vad import VadSensitivity

SampleRate = Literal[8000, 16000, 24000, 48000]


class ProtocolError(Exception):
    """A client message the session cannot use; sent back as an `error` event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


class SessionConfig(BaseModel):
    """The effective configuration of a session (defaults, then `session.configure`)."""

    model_config = ConfigDict(extra="forbid")

    vad_sensitivity: VadSensitivity = VadSensitivity.NORMAL
    vad_enabled: bool = True
    """False: no endpointing, finals only on `input_audio_buffer.commit`."""
    vad_threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Explicit speech probability threshold; overrides the sensitivity preset's."""
    silence_timeout_ms: int = Field(default=500, ge=100, le=10_000)
    """Trailing silence that ends an utterance (final + `vad.speech_end`)."""
    prefix_padding_ms: int = Field(default=500, ge=0, le=2_000)
    """Audio before the detected speech start that is kept for the decode."""
    hold_timeout_ms: int = Field(default=10_000, ge=100, le=3_600_000)
    """Silence after which the session goes on hold (`session.hold`)."""
    inactivity_timeout_ms: int = Field(default=60_000, ge=100, le=3_600_000)
    """On hold this long, or no client message this long: the session closes."""
    max_segment_duration_ms: int = Field(default=20_000, ge=1_000, le=30_000)
    commit_sentences: bool = True
    """Commit a final early, at a sentence end that two decodes agree on and a pause inside
    speech (VAD sessions)."""
    commit_after_words: int = Field(default=0, ge=0, le=1_000)
    """Commit a final at any pause inside speech once the utterance holds this many agreed
    words (0: off)."""
    language: str | None = Field(default=None, min_length=2, max_length=32)
    """An ISO-639-1 code (an English name is accepted and stored as its code)."""
    hot_words: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=100
    )
    prompt: str | None = Field(default=None, max_length=1_000)
    enable_partial_transcripts: bool = True
    enable_itn: bool = True
    input_sample_rate: SampleRate = 16000

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        return validate_language(value)


# -- client -> server ------------------------------------------------------------------------
class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: str | None = None


class SessionConfigure(_Command):
    type: Literal["session.configure"]
    vad_sensitivity: VadSensitivity | None = None
    vad_enabled: bool | None = None
    vad_threshold: float | None = None
    silence_timeout_ms: int | None = None
    prefix_padding_ms: int | None = None
    hold_timeout_ms: int | None = None
    inactivity_timeout_ms: int | None = None
    max_segment_duration_ms: int | None = None
    commit_sentences: bool | None = None
    commit_after_words: int | None = None
    language: str | None = None
    hot_words: list[str] | None = None
    prompt: str | None = None
    enable_partial_transcripts: bool | None = None
    enable_itn: bool | None = None
    input_sample_rate: int | None = None

    def apply(self, config: SessionConfig) -> SessionConfig:
        """The config with this command's fields changed; raises `ProtocolError` if invalid."""
        changes = self.model_dump(exclude_unset=True, exclude={"type", "event_id"})
        return validate_config({**config.model_dump(), **changes})


class InputAudioBufferCommit(_Command):
    type: Literal["input_audio_buffer.commit"]


class SessionCancel(_Command):
    type: Literal["session.cancel"]


class SessionClose(_Command):
    type: Literal["session.close"]


class SessionPong(_Command):
    type: Literal["session.pong"]


ClientCommand = Annotated[
    SessionConfigure | InputAudioBufferCommit | SessionCancel | SessionClose | SessionPong,
    Field(discriminator="type"),
]
_COMMANDS: TypeAdapter[ClientCommand] = TypeAdapter(ClientCommand)
COMMAND_TYPES = frozenset(
    {
        "session.configure",
        "input_audio_buffer.commit",
        "session.cancel",
        "session.close",
        "session.pong",
    }
)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first["loc"] if p not in COMMAND_TYPES) or "type"
    detail = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
    return param, f"Invalid value for '{param}': {detail}."


def validate_config(data: dict[str, Any]) -> SessionConfig:
    try:
        return SessionConfig.model_validate(data)
    except ValidationError as exc:
        param, message = _first_error(exc)
        raise ProtocolError("invalid_value", message, param) from None


MAX_JSON_DEPTH = 32
"""Text frames nest at most this deep (the deepest command needs 5); checked before parsing."""
_JSON_TOKENS = re.compile(r'"(?:[^"\\]+|\\.)*"|[\[\]{}]')


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the brackets outside strings nest deeper than `limit` (linear, no recursion)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            depth += 1
            if depth > limit:
                return True
        elif token == "]" or token == "}":
            depth -= 1
    return False


def load_json_object(text: str) -> dict[str, Any]:
    if json_too_deep(text):
        raise ProtocolError(
            "invalid_json", f"JSON in text frames may nest at most {MAX_JSON_DEPTH} levels deep."
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("invalid_json", "Text frames must be JSON objects.") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("invalid_json", "Commands are JSON objects with a string 'type'.")
    return data


def parse_command(text: str) -> ClientCommand:
    data = load_json_object(text)
    if data["type"] not in COMMAND_TYPES:
        raise ProtocolError("unknown_command", f"Unknown command type '{data['type']}'.", "type")
    try:
        return _COMMANDS.validate_python(data)
    except ValidationError as exc:
        param, message = _first_error(exc)
        raise ProtocolError("invalid_value", message, param) from None


# -- server -> client ------------------------------------------------------------------------
class WordEvent(BaseModel):
    word: str
    start: float
    end: float


class SessionCreatedEvent(BaseModel):
    type: Literal["session.created"] = "session.created"
    session_id: str
    model: str
    config: SessionConfig


class SessionUpdatedEvent(BaseModel):
    type: Literal["session.updated"] = "session.updated"
    session_id: str
    config: SessionConfig


class SpeechStartEvent(BaseModel):
    type: Literal["vad.speech_start"] = "vad.speech_start"
    timestamp_ms: int


class TranscriptPartialEvent(BaseModel):
    type: Literal["transcript.partial"] = "transcript.partial"
    text: str
    """The newest hypothesis of the segment: `stable`, a space, `unstable`."""
    stable: str
    """Confirmed words: they only grow within a segment and the final starts with them."""
    unstable: str
    """The rest of the newest hypothesis: the next partial replaces it."""
    segment_id: int
    timestamp_ms: int


class TranscriptFinalEvent(BaseModel):
    type: Literal["transcript.final"] = "transcript.final"
    text: str
    segment_id: int
    start_ms: int
    end_ms: int
    language: str
    confidence: float
    words: list[WordEvent]


class SpeechEndEvent(BaseModel):
    type: Literal["vad.speech_end"] = "vad.speech_end"
    timestamp_ms: int


class SessionHoldEvent(BaseModel):
    type: Literal["session.hold"] = "session.hold"
    timestamp_ms: int
    hold_timeout_ms: int


class RateLimitEvent(BaseModel):
    type: Literal["session.rate_limit"] = "session.rate_limit"
    delay_ms: int
    message: str


class FramesDroppedEvent(BaseModel):
    type: Literal["session.frames_dropped"] = "session.frames_dropped"
    dropped_ms: int
    message: str


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str
    recoverable: bool
    param: str | None = None


class PingEvent(BaseModel):
    type: Literal["session.ping"] = "session.ping"
    timestamp_ms: int


CloseReason = Literal["client_request", "cancelled", "inactivity_timeout", "client_disconnect"]


class SessionClosedEvent(BaseModel):
    type: Literal["session.closed"] = "session.closed"
    reason: CloseReason
    total_duration_ms: int
    segments_transcribed: int


ServerEvent = Annotated[
    SessionCreatedEvent
    | SessionUpdatedEvent
    | SpeechStartEvent
    | TranscriptPartialEvent
    | TranscriptFinalEvent
    | SpeechEndEvent
    | SessionHoldEvent
    | RateLimitEvent
    | FramesDroppedEvent
    | ErrorEvent
    | PingEvent
    | SessionClosedEvent,
    Field(discriminator="type"),
]
SERVER_EVENTS: TypeAdapter[ServerEvent] = TypeAdapter(ServerEvent)
