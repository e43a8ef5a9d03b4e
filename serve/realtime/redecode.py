"""Re-decoding partials for models without streaming state: the open segment is decoded
again as audio arrives; every decode is sent at once as the newest hypothesis, its words
confirmed (stable) once two decodes agree on them (LocalAgreement-2)."""

from __future__ import annotations

from dataclasses import replace

from engines.base import Audio, TranscribeOptions, TranscriptionResult
from engines.manifest import Capabilities
from serve.realtime.agreement import trim_loop
from serve.realtime.engine import Transcriber, transcribe_once
from serve.realtime.hypothesis import text_words, trusted, usable_segments
from serve.realtime.policy import PartialPolicy, PartialText

PARTIAL_TEMPERATURES = (0.0,)
FINAL_TEMPERATURES = (0.0, 0.4, 0.8)


class LocalAgreementPolicy(PartialPolicy):
    def __init__(
        self, transcribe: Transcriber, capabilities: Capabilities, timeout_s: float
    ) -> None:
        super().__init__()
        self.transcribe = transcribe
        self.capabilities = capabilities
        self.timeout_s = timeout_s
        self.looped = False

    def options(self, options: TranscribeOptions, *, final: bool) -> TranscribeOptions:
        return replace(
            options,
            temperatures=FINAL_TEMPERATURES if final else PARTIAL_TEMPERATURES,
            word_timestamps=final and self.capabilities.word_timestamps,
            vad_filter=final and options.vad_filter,
            beam_size=None if final else 1,
            draft=not final,
        )

    async def partial(self, audio: Audio, options: TranscribeOptions) -> PartialText | None:
        decode = self.options(options, final=False)
        return self.observe(await transcribe_once(self.transcribe, audio, decode, self.timeout_s))

    def observe(self, result: TranscriptionResult) -> PartialText | None:
        segments = usable_segments(result)
        words, looped = trim_loop(text_words(segments))
        self.looped |= looped
        return self.hypothesis(words, trusted(segments))

    async def decode_final(
        self,
        audio: Audio,
        options: TranscribeOptions,
        *,
        closing: bool = False,
        silence_after: bool = False,
    ) -> TranscriptionResult:
        decode = self.options(options, final=True)
        return await transcribe_once(self.transcribe, audio, decode, self.timeout_s)
