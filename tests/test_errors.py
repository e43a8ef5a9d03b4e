from __future__ import annotations

from ray.serve.exceptions import BackPressureError

from serve.errors import EngineOverloadedError, ModelNotFoundError, error_body
from serve.gateway.serving import engine_error


def test_error_body_shape() -> None:
    assert error_body("m", "invalid_request_error", "file", "invalid_audio") == {
        "error": {
            "message": "m",
            "type": "invalid_request_error",
            "param": "file",
            "code": "invalid_audio",
        }
    }


def test_backpressure_from_serve_is_503_with_retry_after() -> None:
    # Ray Serve raises BackPressureError when an engine deployment's queue is full
    # (max_queued_requests); this maps it. Filling a real queue would take minutes of CPU here.
    error = engine_error(
        "whisper-base", BackPressureError(num_queued_requests=9, max_queued_requests=8)
    )
    assert isinstance(error, EngineOverloadedError)
    assert error.status_code == 503
    assert error.headers["Retry-After"] == "1"
    assert error.body()["error"]["code"] == "engine_overloaded"


def test_domain_errors_pass_through_and_unknown_failures_hide_details() -> None:
    not_found = ModelNotFoundError("x")
    assert engine_error("x", not_found) is not_found
    hidden = engine_error("x", RuntimeError("secret stack detail"))
    assert hidden.status_code == 503
    assert "secret" not in hidden.message
