"""Observability tests. The service's tracing is configured the way an operator does it, by
the standard `OTEL_*` variables, pointed at an in-memory OTLP receiver in this process.

They must be set before the session's Ray starts (its workers inherit this environment), so
this is done when this folder is collected, before any test runs. Every test of the session
then exports its spans here; nothing else changes.
"""

from __future__ import annotations

import os

import pytest

from tests.observability.collector import OtlpCollector

COLLECTOR = OtlpCollector()
os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = COLLECTOR.endpoint
os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "200"


@pytest.fixture(scope="session")
def collector() -> OtlpCollector:
    return COLLECTOR
