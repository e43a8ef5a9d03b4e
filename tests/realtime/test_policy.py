"""The partial policy on the real tiny.en backend: choice by declared streaming (never by
architecture), LocalAgreement partials converging on the final, no text from silence or
noise."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from engines.base import TranscribeOptions
from engines.manifest import Architecture, ModelManifest
from engines.whisper.backend import WhisperBackend
from serve.errors import UnsupportedCapabilityError
from serve.realtime.engine import backend_transcriber
from serve.realtime.model import choose_policy
from serve.realtime.native_partials import NativePartialPolicy
from serve.realtime.redecode import LocalAgreementPolicy
from tests.realtime.helpers import clip_audio, clip_text, norm_words, silence, stream_wer

REQUEST = TranscribeOptions(language="en", vad_filter=False)


def with_caps(manifest: ModelManifest, engine: str | None = None, **caps: object) -> ModelManifest:
    capabilities = manifest.capabilities.model_copy(update=caps)
    return manifest.model_copy(
        update={"capabilities": capabilities, "engine": engine or manifest.engine}
    )


def test_policy_is_chosen_by_declared_streaming_not_architecture(
    tiny_manifest: ModelManifest, tiny_backend: WhisperBackend
) -> None:
    transcribe = backend_transcriber(tiny_backend)
    assert isinstance(choose_policy(tiny_manifest, transcribe, 10), LocalAgreementPolicy)
    # A CTC model of an engine without native streaming: re-decoded, whatever it claims.
    ctc = with_caps(tiny_manifest, architecture=Architecture.CTC, streaming=True)
    assert isinstance(choose_policy(ctc, transcribe, 10), LocalAgreementPolicy)
    # An offline CTC export of a streaming engine (no streaming state): re-decoded too.
    offline = with_caps(tiny_manifest, "wenet", architecture=Architecture.CTC, streaming=False)
    assert isinstance(choose_policy(offline, transcribe, 10), LocalAgreementPolicy)
    # A streaming model of a streaming engine: native partials, from its sticky replicas.
    native = with_caps(tiny_manifest, "wenet", architecture=Architecture.CTC, streaming=True)
    with pytest.raises(UnsupportedCapabilityError, match="streams natively"):
        choose_policy(native, transcribe, 10)
    handle = object()
    assert isinstance(choose_policy(native, transcribe, 10, handle), NativePartialPolicy)


async def test_partials_grow_and_are_prefixes_of_the_final(
    tiny_manifest: ModelManifest, tiny_backend: WhisperBackend
) -> None:
    name = "6930-75918-0000.wav"
    audio = np.concatenate([silence(0.3), clip_audio(name), silence(0.3)])
    policy = choose_policy(tiny_manifest, backend_transcriber(tiny_backend), 60)
    partials = []
    for end in np.arange(1.0, len(audio) / 16_000, 0.5):
        text = await policy.partial(audio[: round(end * 16_000)], REQUEST)
        assert text is not None, "every decode is sent as the newest hypothesis"
        partials.append(text)
    assert partials[0].text and not partials[0].stable, "the first decode: unstable text"
    stable = [p.stable for p in partials]
    assert stable[-1], stable
    assert all(b.startswith(a) for a, b in itertools.pairwise(stable)), stable
    assert all(p.text == " ".join(x for x in (p.stable, p.unstable) if x) for p in partials)
    final = policy.finish(await policy.decode_final(audio, REQUEST), offset_ms=1000)
    assert final is not None
    for partial in partials:
        assert final.text.startswith(partial.stable)
    assert stream_wer(clip_text(name), final.text) <= 0.15
    assert len(final.words) == len(final.text.split())
    assert 1000 <= final.start_ms < final.end_ms <= 1000 + len(audio) // 16
    assert [norm_words(w.word) for w in final.words] == [[w] for w in norm_words(final.text)]
    assert 0.3 < final.confidence <= 1.0


async def test_no_text_from_silence_or_noise(
    tiny_manifest: ModelManifest, tiny_backend: WhisperBackend
) -> None:
    rng = np.random.default_rng(3)
    policy = choose_policy(tiny_manifest, backend_transcriber(tiny_backend), 60)
    for audio in (
        silence(3.0),
        rng.normal(0, 0.1, 48_000).astype(np.float32),
        (np.cumsum(rng.normal(0, 0.01, 48_000)) / 30).astype(np.float32),
    ):
        policy.open_segment()
        for part in (audio[:24_000], audio):
            text = await policy.partial(part, REQUEST)
            assert text is not None and not text.text, text
        assert policy.finish(await policy.decode_final(audio, REQUEST), 0) is None


async def test_committed_audio_without_session_vad_is_searched_for_speech(
    tiny_manifest: ModelManifest, tiny_backend: WhisperBackend
) -> None:
    """Without the session's VAD (client commits), the final decode runs the engine's VAD like
    REST: silence decodes to nothing at all (not a "You" that a filter has to catch), speech
    still decodes."""
    policy = choose_policy(tiny_manifest, backend_transcriber(tiny_backend), 60)
    committed = replace(REQUEST, vad_filter=True)
    result = await policy.decode_final(silence(10.0), committed)
    assert result.segments == [] and result.text == ""
    raw = await policy.decode_final(silence(10.0), REQUEST)
    assert raw.text, "the bare decode of silence says something (tiny.en: 'You')"
    name = "6930-75918-0000.wav"
    audio = np.concatenate([silence(1.0), clip_audio(name), silence(1.0)])
    final = policy.finish(await policy.decode_final(audio, committed), offset_ms=0)
    assert final is not None and stream_wer(clip_text(name), final.text) <= 0.15
    assert 800 <= final.start_ms < final.end_ms <= 1000 + len(clip_audio(name)) // 16 + 300
