"""`/openapi.json`: FastAPI's schema completed with what the handlers do by hand.

The audio handlers read their multipart form themselves (to bound it as it arrives), so FastAPI
sees no request body: the forms are described here, with every error status an operation can
answer in OpenAI's error shape, the success bodies by content type, and the bearer API key. A
client generator or a fuzzer can use the result as it is; FastAPI's 422 (never answered: the
gateway answers 400) is removed.
"""

from __future__ import annotations

from typing import Any, get_args

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serve.gateway.protocol import (
    ErrorResponse,
    Granularity,
    HealthReport,
    ResponseFormat,
    StreamError,
    TranscriptionJson,
    TranscriptionVerbose,
    TranscriptTextDelta,
    TranscriptTextDone,
)

REF = "#/components/schemas/{model}"
BEARER = "bearerAuth"
KEYED_PREFIX = "/v1/"
"""With THEO_API_KEYS set, every route under /v1/ needs `Authorization: Bearer <key>`."""
ERROR_DESCRIPTIONS = {
    400: "Invalid request: a parameter, the form or the audio (`param` names it).",
    401: "Missing or incorrect API key.",
    404: "The model (or route) does not exist.",
    413: "The upload exceeds THEO_MAX_UPLOAD_MB.",
    415: "The request is not multipart/form-data.",
    500: "Unexpected server error.",
    503: "The model's engine is overloaded or unavailable; retry after `Retry-After` seconds.",
    504: "The engine did not answer within THEO_REQUEST_TIMEOUT_S.",
}
AUDIO_ERRORS = (400, 401, 404, 413, 415, 500, 503, 504)
TEXT_FORMATS = {
    "text/plain": "`response_format=text`",
    "application/x-subrip": "`response_format=srt`",
    "text/vtt": "`response_format=vtt`",
}
SSE_EVENT: dict[str, Any] = {
    "description": "`stream=true`: each event's `data` is one JSON object, "
    "`transcript.text.delta` per segment, then `transcript.text.done` (or `error`).",
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "oneOf": [
                    {"$ref": REF.format(model=name)}
                    for name in ("TranscriptTextDelta", "TranscriptTextDone", "StreamError")
                ]
            },
        },
        "event": {"type": "string"},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _form(translation: bool, models: list[str]) -> dict[str, Any]:
    model: dict[str, Any] = {"type": "string", "minLength": 1, "description": "A served model."}
    if models:
        model["enum"] = models
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "The audio: any container FFmpeg reads (wav, flac, mp3, ogg, webm, "
            "m4a...), at most THEO_MAX_UPLOAD_MB and THEO_MAX_AUDIO_DURATION_S.",
        },
        "model": model,
        "prompt": {"type": "string", "description": "Text that precedes the audio."},
        "response_format": {
            "type": "string",
            "enum": list(get_args(ResponseFormat)),
            "default": "json",
        },
        "temperature": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0,
            "description": "0 uses the fallback ladder 0, 0.2 ... 1.0.",
        },
        "stream": {"type": "boolean", "default": False, "description": "Server-sent events."},
    }
    if not translation:
        properties |= {
            "language": {
                "type": "string",
                "description": "ISO-639-1 code (or English name) of the speech; the model "
                "must support it. Omitted: detected.",
            },
            "timestamp_granularities[]": {
                "type": "array",
                "items": {"type": "string", "enum": list(get_args(Granularity))},
                "description": "With `verbose_json`: `word` and/or `segment` (default).",
            },
            "hot_words": {"type": "string", "description": "Extension: a comma list."},
            "vad_filter": {
                "type": "boolean",
                "default": True,
                "description": "Extension: skip non-speech.",
            },
        }
    return {"type": "object", "required": ["file", "model"], "properties": properties}


def _error(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _ref("ErrorResponse")}},
    }
    if status == 503:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return response


def _audio_operation(operation: dict[str, Any], form: str) -> None:
    content = {"schema": _ref(form), "encoding": {"file": {"contentType": "*/*"}}}
    operation["requestBody"] = {"required": True, "content": {"multipart/form-data": content}}
    success: dict[str, Any] = {
        "application/json": {
            "schema": {"anyOf": [_ref("TranscriptionJson"), _ref("TranscriptionVerbose")]}
        }
    }
    for media_type, description in TEXT_FORMATS.items():
        success[media_type] = {"schema": {"type": "string", "description": description}}
    success["text/event-stream"] = {"schema": SSE_EVENT}
    operation["responses"] = {
        "200": {"description": "The transcript, in `response_format`.", "content": success},
        **{str(status): _error(status) for status in AUDIO_ERRORS},
    }


def _component_schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    _, schema = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    defs: dict[str, Any] = schema.get("$defs", {})
    return defs


def theo_openapi(app: FastAPI, models: list[str]) -> dict[str, Any]:
    """The complete schema of `app` serving `models` (cached on it, as FastAPI does)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas |= _component_schemas(
        [
            ErrorResponse,
            TranscriptionJson,
            TranscriptionVerbose,
            HealthReport,
            TranscriptTextDelta,
            TranscriptTextDone,
            StreamError,
        ]
    )
    schemas["TranscriptionForm"] = _form(translation=False, models=models)
    schemas["TranslationForm"] = _form(translation=True, models=models)
    components["securitySchemes"] = {BEARER: {"type": "http", "scheme": "bearer"}}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if path.startswith(KEYED_PREFIX):
                operation["security"] = [{BEARER: []}]
                responses["401"] = _error(401)
            responses["500"] = _error(500)
    paths = schema["paths"]
    _audio_operation(paths["/v1/audio/transcriptions"]["post"], "TranscriptionForm")
    _audio_operation(paths["/v1/audio/translations"]["post"], "TranslationForm")
    paths["/v1/models/{model_id}"]["get"]["responses"]["404"] = _error(404)
    health = paths["/health"]["get"]["responses"]
    report = {"application/json": {"schema": _ref("HealthReport")}}
    health["200"] = {"description": "Every model is loaded.", "content": report}
    health["503"] = {
        "description": "Some model is not ready (`models` says why).",
        "content": report,
    }
    paths["/metrics"]["get"]["responses"]["200"] = {
        "description": "Prometheus text exposition of the gateway and every engine.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    app.openapi_schema = schema
    return schema
