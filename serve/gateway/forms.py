"""Multipart form -> `TranscriptionRequest`, with OpenAI-style 400s naming the bad param."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from serve.errors import InvalidParameterError
from serve.gateway.protocol import TranscriptionRequest
from serve.languages import LanguageError, validate_language

LIST_FIELDS = {"timestamp_granularities", "hot_words"}
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off", ""}


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise InvalidParameterError(name, f"'{name}' must be a boolean, got {value!r}.")


def form_fields(form: FormData) -> dict[str, Any]:
    """Collect text fields; `name[]` and `name` both feed list fields (the SDK sends `[]`); any
    other field given twice is refused."""
    fields: dict[str, Any] = {}
    for raw_key, value in form.multi_items():
        if isinstance(value, UploadFile) or raw_key == "file":
            continue
        key = raw_key.removesuffix("[]")
        if key in LIST_FIELDS:
            parts = [p.strip() for p in str(value).split(",")] if key == "hot_words" else [value]
            fields.setdefault(key, []).extend(p for p in parts if p)
        elif key in fields:
            # Which of two values was meant is not ours to guess.
            raise InvalidParameterError(key, f"'{key}' was given more than once.")
        else:
            fields[key] = value
    return fields


def parse_request(form: FormData, *, translation: bool) -> TranscriptionRequest:
    fields = form_fields(form)
    for name in ("stream", "vad_filter", "condition_on_previous_text"):
        if name in fields:
            fields[name] = _bool(name, str(fields[name]))
    if translation:
        for name in ("language", "timestamp_granularities", "hot_words"):
            fields.pop(name, None)
    try:
        fields["language"] = validate_language(fields.get("language"))
    except LanguageError as exc:
        raise InvalidParameterError("language", str(exc)) from None
    if "model" not in fields:
        raise InvalidParameterError("model", "you must provide a model parameter")
    try:
        return TranscriptionRequest.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else None
        raise InvalidParameterError(
            param or "request", f"Invalid value for '{param}': {first['msg']}."
        ) from None


def upload_file(form: FormData) -> UploadFile:
    value = form.get("file")
    if not isinstance(value, UploadFile):
        raise InvalidParameterError("file", "you must provide an audio file in the 'file' field")
    return value
