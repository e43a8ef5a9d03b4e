"""Domain errors and their one mapping to OpenAI-shaped HTTP errors.

Every error a client can cause is a `TheoError` with its status, OpenAI `type`, `code` and the
offending `param`; handlers turn them into `{"error": {...}}`. Nothing else reaches a client.
"""

from __future__ import annotations

from typing import Any

MAX_ECHO_CHARS = 100
"""Client input quoted back in an error message is cut to this length."""


class TheoError(Exception):
    status_code = 500
    error_type = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, self.param, self.code)


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


class InvalidRequestError(TheoError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class InvalidParameterError(InvalidRequestError):
    code = "invalid_value"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message, param=param)


class InvalidAudioError(InvalidRequestError):
    code = "invalid_audio"

    def __init__(self, message: str, param: str = "file") -> None:
        super().__init__(message, param=param)


class TruncatedAudioError(InvalidAudioError):
    """Audio that stops before its container says it ends, or breaks off after its start."""

    code = "truncated_audio"


class AudioTooLongError(InvalidRequestError):
    """Decoded audio longer than `THEO_MAX_AUDIO_DURATION_S` (400, as OpenAI answers a file
    over a model's duration limit)."""

    code = "audio_too_long"

    def __init__(self, limit_s: float) -> None:
        super().__init__(
            f"The audio is longer than the maximum duration of {limit_s:g} seconds "
            "(THEO_MAX_AUDIO_DURATION_S).",
            param="file",
        )


class UnsupportedMediaTypeError(TheoError):
    status_code = 415
    error_type = "invalid_request_error"
    code = "unsupported_media_type"


class UnsupportedCapabilityError(InvalidRequestError):
    code = "unsupported_capability"


class ModelNotFoundError(TheoError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        shown = model if len(model) <= MAX_ECHO_CHARS else model[:MAX_ECHO_CHARS] + "..."
        super().__init__(f"The model '{shown}' does not exist.", param="model")


class FileTooLargeError(TheoError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "file_too_large"

    def __init__(self, limit_bytes: int) -> None:
        limit_mb = limit_bytes / (1024 * 1024)
        super().__init__(
            f"The uploaded file exceeds the maximum size of {limit_mb:g} MB (THEO_MAX_UPLOAD_MB).",
            param="file",
        )


class AuthenticationError(TheoError):
    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class EngineOverloadedError(TheoError):
    status_code = 503
    error_type = "server_error"
    code = "engine_overloaded"

    def __init__(self, model: str, retry_after_s: int = 1) -> None:
        super().__init__(
            f"The model '{model}' is overloaded; retry after {retry_after_s} s.",
            headers={"Retry-After": str(retry_after_s)},
        )


class EngineUnavailableError(TheoError):
    status_code = 503
    error_type = "server_error"
    code = "engine_unavailable"

    def __init__(self, model: str, reason: str, retry_after_s: int = 5) -> None:
        super().__init__(
            f"The model '{model}' is not available: {reason}",
            headers={"Retry-After": str(retry_after_s)},
        )


class EngineTimeoutError(TheoError):
    status_code = 504
    error_type = "server_error"
    code = "engine_timeout"


HTTP_STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "file_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("invalid_request_error", "invalid_value"),
}


def http_error_body(status_code: int, message: str) -> dict[str, Any]:
    """OpenAI shape for errors raised by the HTTP framework itself (unknown route, method)."""
    error_type, code = HTTP_STATUS_ERRORS.get(status_code, ("server_error", "internal_error"))
    return error_body(message, error_type, None, code)
