"""Pydantic schemas of the OpenAI audio contract (requests as parsed, responses as sent)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
Granularity = Literal["word", "segment"]


class TranscriptionRequest(BaseModel):
    """Form fields of `/v1/audio/transcriptions` and `/v1/audio/translations` (+ extensions)."""

    model: str = Field(min_length=1)
    language: str | None = None
    prompt: str | None = None
    response_format: ResponseFormat = "json"
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)
    timestamp_granularities: list[Granularity] = Field(default_factory=lambda: ["segment"])  # type: ignore[arg-type]
    stream: bool = False
    hot_words: list[str] = Field(default_factory=list)
    vad_filter: bool = True
    condition_on_previous_text: bool = True


class UsageDuration(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class Word(BaseModel):
    word: str
    start: float
    end: float


class Segment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class TranscriptionJson(BaseModel):
    text: str
    usage: UsageDuration


class TranscriptionVerbose(BaseModel):
    task: Literal["transcribe", "translate"]
    language: str
    duration: float
    text: str
    segments: list[Segment] | None = None
    words: list[Word] | None = None
    usage: UsageDuration


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "theo"
    engine: str
    version: str
    description: str
    capabilities: dict[str, Any]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error the API answers, OpenAI's shape."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


class ModelHealth(BaseModel):
    state: str
    detail: str


class HealthReport(BaseModel):
    status: Literal["ok", "unavailable"]
    models: dict[str, ModelHealth]
    detail: str | None = None


class TranscriptTextDelta(BaseModel):
    """`stream=true`: one event per decoded segment."""

    type: Literal["transcript.text.delta"] = "transcript.text.delta"
    delta: str
    logprobs: None = None


class TranscriptTextDone(BaseModel):
    """`stream=true`: the last event, with the whole text."""

    type: Literal["transcript.text.done"] = "transcript.text.done"
    text: str
    logprobs: None = None
    usage: UsageDuration


class StreamError(BaseModel):
    """`stream=true`: the engine failed after the stream started (the last event)."""

    type: Literal["error"] = "error"
    error: ErrorDetail
