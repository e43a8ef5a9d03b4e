"""Schemathesis against the service's own `/openapi.json`, API keys on.

Every operation gets positive cases (valid per the schema) and negative ones (violating it),
generated deterministically so CI runs the same cases every time (`THEO_FUZZ_RANDOM=1`
explores new ones). Uploads are real clips in several containers, clips mutated the way
attackers do (cut, bytes flipped, header fields rewritten) or random bytes. The run fails on
any 5xx, any status, content type, header or body the schema does not document, any invalid
request that is accepted, any route that ignores the API key, and gateway memory growing by
more than `RSS_MARGIN_MB` (private memory: `USS_MARGIN_MB`) across the run. Bounded for CI:
`THEO_FUZZ_EXAMPLES` cases per operation and mode (default 40), `THEO_FUZZ_BUDGET_S` seconds in
all (default 150).
"""

from __future__ import annotations

import collections
import contextlib
import os
import struct
import time
from functools import cache
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.conftest import API_KEY
from tests.hostile.inputs import encode, pcm16_wav
from tests.realtime.helpers import clip_audio
from tests.rss import describe, rss_mb, serve_processes, uss_mb

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

EXAMPLES = int(os.environ.get("THEO_FUZZ_EXAMPLES", "40"))
BUDGET_S = float(os.environ.get("THEO_FUZZ_BUDGET_S", "150"))
RANDOM = os.environ.get("THEO_FUZZ_RANDOM") == "1"
RSS_MARGIN_MB = 100.0
USS_MARGIN_MB = 64.0
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
    unsupported_method,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@cache
def clips() -> tuple[bytes, ...]:
    """Short real speech (2.6 s) in several containers."""
    audio = clip_audio("7902-96591-0000.wav")
    return (pcm16_wav(audio), encode(audio, "mp3"), encode(audio, "ogg"), encode(audio, "flac"))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real WAV, cut, with bytes flipped, or with a header field rewritten."""
    data = bytearray(draw(st.sampled_from(clips())))
    how = draw(st.sampled_from(["cut", "flip", "rate", "size", "channels"]))
    if how == "cut":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 16))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if data[:4] != b"RIFF":
        return bytes(data[: len(data) // 2])
    offset, value = {
        "rate": (24, draw(st.integers(0, 2**32 - 1))),
        "size": (40, draw(st.integers(0, 2**32 - 1))),
        "channels": (22, draw(st.integers(0, 2**16 - 1))),
    }[how]
    fmt = "<H" if how == "channels" else "<I"
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


def uploads() -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from(clips()), mutated(), st.binary(max_size=4096))


def headers_mutated(case: Any) -> bool:
    """Whether a negative case's mutations touch its headers (the `Authorization` header
    included: dropped, or with a value of the wrong shape)."""
    data = case.meta.phase.data if case.meta is not None else None
    locations = [getattr(data, "parameter_location", None)]
    locations += [m.parameter_location for m in getattr(data, "mutations", ())]
    return ParameterLocation.HEADER in locations


def auth_for(case: Any, mode: GenerationMode) -> dict[str, str]:
    """The valid key, except for a negative case whose headers are the mutation: adding the
    key would turn it back into a valid request."""
    return {} if mode is GenerationMode.NEGATIVE and headers_mutated(case) else AUTH


def fuzz(
    op: Any,
    mode: GenerationMode,
    base_url: str,
    deadline: float,
    statuses: collections.Counter[tuple[str, str, int]],
    failures: dict[str, str],
) -> None:
    """Up to `EXAMPLES` cases of one operation in one mode, until `deadline`."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        headers = auth_for(case, mode)
        response = case.call(base_url=base_url, headers=headers, timeout=120)
        statuses[(op.label, mode.value, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except BaseException as exc:  # a FailureGroup lists every failed check
            key = f"{op.label} {mode.value} {response.status_code}"
            failures.setdefault(
                key, f"{str(exc)[:4000]}\n{case.as_curl_command(headers=headers)[:2000]}"
            )

    run()


def test_openapi_fuzz(serve_url: str, report: Any) -> None:
    schemathesis.openapi.format("binary", uploads())
    spec = httpx.get(f"{serve_url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/audio/transcriptions",
        "POST /v1/audio/translations",
        "GET /v1/models/{model_id}",
    }
    for op in operations:  # warm-up: first calls fill caches, not leaks
        httpx.request(op.method.upper(), f"{serve_url}{op.path}", headers=AUTH, timeout=60)
    processes = serve_processes()
    before, before_private = rss_mb(processes), uss_mb(processes)
    statuses: collections.Counter[tuple[str, str, int]] = collections.Counter()
    failures: dict[str, str] = {}
    started = time.monotonic()
    deadline = started + BUDGET_S
    for op in operations:
        for mode in MODES:
            with contextlib.suppress(Unsatisfiable):  # no parameters: nothing negative
                fuzz(op, mode, serve_url, deadline, statuses, failures)
    elapsed = time.monotonic() - started
    after, after_private = rss_mb(processes), uss_mb(processes)
    cases = sum(statuses.values())
    by_mode = {
        m.value: sum(n for (_, mm, _), n in statuses.items() if mm == m.value) for m in MODES
    }
    per_op: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for (label, _, status), n in statuses.items():
        per_op[label][status] += n
    report(
        f"fuzz: {cases} cases ({by_mode}) in {elapsed:.0f} s, "
        f"{EXAMPLES} per operation and mode, derandomized={not RANDOM}"
    )
    for label, counts in sorted(per_op.items()):
        report(f"  {label}: " + ", ".join(f"{s} x{n}" for s, n in sorted(counts.items())))
    report(f"fuzz RSS before: {describe(before, before_private)}")
    report(f"fuzz RSS after:  {describe(after, after_private)}")
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert cases >= min(EXAMPLES * len(operations), 150), statuses
    assert any(status == 200 for (label, _, status) in statuses if "audio" in label), statuses
    assert after["gateway"] - before["gateway"] < RSS_MARGIN_MB, (before, after)
    assert after_private["gateway"] - before_private["gateway"] < USS_MARGIN_MB, (
        before_private,
        after_private,
    )
