"""The locust load test, CI-sized (well under 60 s), headless against the real local service:
every request it makes succeeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import API_KEY

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
RUN_TIME_S = 25


def run_locust(url: str, users: int, *user_classes: str) -> tuple[int, list[dict[str, object]]]:
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{RUN_TIME_S}s", "--stop-timeout", "20",
        "--host", url, "--theo-api-key", API_KEY, "--theo-models", "whisper-tiny.en",
        "--json", "--only-summary", "--loglevel", "WARNING", *user_classes,
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIME_S + 60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    start = done.stdout.find("[")
    assert start >= 0, done.stdout[-2000:] + done.stderr[-3000:]
    stats: list[dict[str, object]] = json.loads(done.stdout[start:])
    return done.returncode, stats


def test_locust_smoke_has_no_failures(serve_url: str) -> None:
    """Three REST users and one realtime user (the classes' weights) for 25 s."""
    code, stats = run_locust(serve_url, 4, "TranscriptionUser", "RealtimeUser")
    failures = {s["name"]: s["num_failures"] for s in stats if s["num_failures"]}
    assert not failures, failures
    assert code == 0
    requests = {str(s["name"]): int(str(s["num_requests"])) for s in stats}
    transcriptions = sum(n for name, n in requests.items() if name.startswith("POST transcr"))
    assert transcriptions >= 5, requests
    # Partials thin out under load by design (finals never wait), so only these are certain.
    for entry in ("connect", "final", "session"):
        assert requests.get(f"WS {entry} whisper-tiny.en", 0) >= 1, requests
