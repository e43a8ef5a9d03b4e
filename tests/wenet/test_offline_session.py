"""An offline CTC model (a WeNet export without streaming state, `streaming: false`) goes the
re-decode path in a realtime session: LocalAgreement partials over `transcribe_file`, no
streaming replica, and the same final as a file decode."""

from __future__ import annotations

import itertools

import numpy as np

from engines.manifest import load_manifest
from engines.spec import streams_natively
from engines.wenet.backend import WenetBackend
from engines.wenet.testing.generate import GeneratedModel
from serve.realtime.engine import backend_transcriber
from serve.realtime.protocol import SessionConfig
from serve.realtime.redecode import LocalAgreementPolicy
from tests.realtime.harness import make_session, run
from tests.realtime.helpers import norm_words, silence
from tests.wenet.conftest import JFK_TEXT, LONG_PAUSES


async def test_an_offline_ctc_model_streams_by_re_decoding(
    jfk_model: GeneratedModel, jfk_audio: np.ndarray
) -> None:
    manifest = load_manifest(jfk_model.directory / "theo.yaml")
    offline = manifest.model_copy(
        update={"capabilities": manifest.capabilities.model_copy(update={"streaming": False})}
    )
    assert streams_natively(manifest) and not streams_natively(offline)
    backend = WenetBackend(offline, endpoint=LONG_PAUSES)
    backend.load()
    session, recorder = make_session(
        offline, backend_transcriber(backend), SessionConfig(silence_timeout_ms=2000)
    )
    assert isinstance(session.policy, LocalAgreementPolicy)
    audio = np.concatenate([silence(0.3), jfk_audio.astype(np.float32), silence(2.5)])
    await run(session, audio, speed=4.0)
    events = recorder.events
    finals = [e for e in events if e["type"] == "transcript.final"]
    assert [norm_words(f["text"]) for f in finals] == [norm_words(JFK_TEXT)]
    shown = [e for e in events if e["type"] == "transcript.partial"]
    assert all(e["text"].startswith(e["stable"]) for e in shown)
    partials = [e["stable"] for e in shown if e["stable"]]
    assert len(partials) >= 2, shown
    assert all(
        norm_words(b)[: len(norm_words(a))] == norm_words(a)
        for a, b in itertools.pairwise(partials)
    )
    assert all(norm_words(JFK_TEXT)[: len(norm_words(p))] == norm_words(p) for p in partials)
