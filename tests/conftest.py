"""Session fixtures: bundled models in a temp models dir, and the real Theo Serve app on a
private local Ray, over loopback. API keys are on, so every client sends `API_KEY`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engines.spec import registered_engines
from serve.local import free_port
from tests.rss import snapshot

API_KEY = "test-key"
MAX_AUDIO_DURATION_S = 900.0
"""Below the default (3600 s): the duration bound is tested with small uploads."""
WENET_MODEL = "wenet-playback"
CONTRACT_MODELS = {"faster-whisper": "whisper-tiny.en", "wenet": WENET_MODEL}
"""The model of each registered engine that the contract suites drive (`serve_url` serves
them): a new engine adds its own here, or the suites fail for it."""
WENET_PLAYBACK = (
    "and so my fellow americans ask not what your {country|county} can do for you "
    "ask what you can do for your country"
)


REPORT = pytest.StashKey[list[str]]()
ARTIFACTS = Path(__file__).parent / "artifacts"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORT] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Figures the suite measured (memory of the Serve processes, fuzz case counts)."""
    lines = terminalreporter.config.stash.get(REPORT, [])
    if lines:
        terminalreporter.section("theo figures")
        for line in lines:
            terminalreporter.write_line(line)
        (ARTIFACTS / "figures.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def report(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Add a line to the figures printed after the suite (and kept in tests/artifacts)."""
    return pytestconfig.stash[REPORT].append


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engines.bundled import install_bundled
    from engines.wenet.testing import generate_model
    from serve.audio import decode_audio_bytes
    from tests.support import clips

    path = tmp_path_factory.mktemp("models")
    install_bundled(path)
    # A WeNet-format CTC model whose output plays JFK's words back over the clip's speech:
    # exact transcripts through the real WeNet engine (random weights otherwise).
    jfk = clips()["jfk.wav"]
    generate_model(
        path / WENET_MODEL,
        playback=WENET_PLAYBACK,
        fit_audio=decode_audio_bytes(jfk.path.read_bytes()),
        name=WENET_MODEL,
        # One endpoint per 2 s pause (WeNet's default is 1 s): JFK stays one segment.
        config_overrides={
            "endpoint": {
                "rules": [{"must_decode_something": True, "min_trailing_silence_ms": 2000}]
            }
        },
    )
    return path


@pytest.fixture(scope="session")
def serve_url(models_dir: Path, report: Callable[[str], None]) -> Iterator[str]:
    """Base URL of the real service: gateway + whisper-tiny.en + whisper-base deployments.
    The resident memory of its Serve processes is reported after the suite."""
    from serve import local
    from serve.settings import TheoSettings

    port = free_port()
    settings = TheoSettings(
        port=port,
        models_dir=models_dir,
        api_keys=[API_KEY],
        max_audio_duration_s=MAX_AUDIO_DURATION_S,
        whisper={"max_batch_size": 8, "batch_wait_timeout_s": 0.1, "cpu_threads": 2},
    )
    local.start_local_ray(settings=settings)
    try:
        local.deploy(settings)
        url = f"http://127.0.0.1:{port}"
        local.wait_healthy(url)
        os.environ["THEO_TEST_URL"] = url
        report(f"RSS after start: {snapshot()}")
        yield url
        report(f"RSS after the suite: {snapshot()}")
    finally:
        local.shutdown()


def metric_total(exposition: str, name: str, model: str) -> float:
    """The sum of a metric's samples for one model in a Prometheus text exposition."""
    return sum(
        float(line.split()[-1])
        for line in exposition.splitlines()
        if line.startswith(name) and f'model="{model}"' in line
    )


@pytest.fixture(scope="session")
def wenet_stream_steps(serve_url: str) -> Callable[[], float]:
    """Streaming steps the WeNet test model's replicas served so far
    (`theo_engine_stream_steps_total`). The local run has one replica, and the gateway's
    `/metrics` includes its exposition."""
    import httpx

    def read() -> float:
        text = httpx.get(f"{serve_url}/metrics", timeout=30).text
        return metric_total(text, "theo_engine_stream_steps_total", WENET_MODEL)

    return read


@pytest.fixture(scope="session")
def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="session")
def openai_client(serve_url: str):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(base_url=f"{serve_url}/v1", api_key=API_KEY, max_retries=0, timeout=300)


@pytest.fixture(params=sorted(registered_engines()))
def contract_model(request: pytest.FixtureRequest) -> str:
    """The contract suites run once per registered engine, on that engine's test model."""
    engine = str(request.param)
    assert engine in CONTRACT_MODELS, f"engine {engine!r} has no model in CONTRACT_MODELS"
    return CONTRACT_MODELS[engine]
