"""The contract suites, unchanged, against the deployed shape: the same test functions as
tests/e2e/test_engine_contract.py (REST formats, SSE, errors, hot words) and
tests/realtime/test_engine_contract_ws.py (realtime native and OpenAI mode, CTC partials),
collected here a second time, where `serve_url` is a gateway pod's Serve proxy of the cluster
harness (tests/cluster/conftest.py). The replica-kill test of the realtime suite drives the local
Ray as a driver and stays local; the harness's own fault tests cover the cluster."""

from __future__ import annotations

import pytest

from tests.e2e.test_engine_contract import (
    test_error_contract,
    test_json,
    test_native_hot_words_change_the_ctc_output,
    test_sse,
    test_text_srt_vtt,
    test_verbose_json,
)
from tests.realtime.test_engine_contract_ws import (
    test_ctc_partials_arrive_chunk_by_chunk_before_speech_end,
    test_native_mode_contract,
    test_openai_mode_contract,
)

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(900)]

__all__ = [
    "test_ctc_partials_arrive_chunk_by_chunk_before_speech_end",
    "test_error_contract",
    "test_json",
    "test_native_hot_words_change_the_ctc_output",
    "test_native_mode_contract",
    "test_openai_mode_contract",
    "test_sse",
    "test_text_srt_vtt",
    "test_verbose_json",
]
