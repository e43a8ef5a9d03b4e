"""Native partials: the engine's own streaming decoder, chunk by chunk, for models whose
engine streams natively (`engines.spec.streams_natively`; WeNet's CTC models).

Each VAD segment opens a decoding stream on a sticky streaming replica (`session_id=` routes
every call of the stream to the replica holding its decoder state). New audio goes in when
the engine can decode another chunk (it says how much audio that takes; one call per chunk,
not per audio message) and the engine answers with its hypothesis; LocalAgreement over those
hypotheses splits each partial into stable and unstable words.

The final comes from the stream itself, as in WeNet's runtime: the last audio goes in, the
engine ends the stream (its endpoint finals, attention rescoring) and answers with its finals;
the encoder does not run over the segment a second time. When the stream cannot give it (the
replica died, or the stream already holds audio past the segment's end that may be speech:
a split or commit inside speech), the final is decoded from the segment's audio in the ring
buffer with a stateless whole-segment decode (`transcribe`, as a file is), so the session's
retry recovers on any live replica. A stream lost with its replica is reopened and fed the
segment's audio again, so partials resume.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from typing import Any

from engines.base import (
    SAMPLE_RATE,
    Audio,
    SegmentResult,
    StreamSegment,
    StreamStep,
    TranscribeOptions,
    TranscriptionResult,
    WordTiming,
    stream_result,
)
from engines.manifest import Capabilities
from serve.realtime.engine import Transcriber, transcribe_once
from serve.realtime.policy import PartialPolicy, PartialText

logger = logging.getLogger(__name__)

NATIVE_PARTIAL_INTERVAL_MS = 160
"""New audio that makes the session call the engine when the engine has not said how much
its next chunk needs (before the first call of a stream, or an engine that does not say)."""


class NativePartialPolicy(PartialPolicy):
    partial_interval_ms = NATIVE_PARTIAL_INTERVAL_MS
    gated = False
    speculative_finals = False
    """The final decode (a full-context pass over the segment) would double the engine's work
    at every pause; it runs once, when the segment ends."""

    def __init__(
        self,
        handle: Any,
        transcribe: Transcriber,
        capabilities: Capabilities,
        timeout_s: float,
    ) -> None:
        super().__init__()
        self.handle = handle
        self.transcribe = transcribe
        self.capabilities = capabilities
        self.timeout_s = timeout_s
        self.looped = False
        self._prefix = uuid.uuid4().hex
        self._count = 0
        self._stream: str | None = None
        self._sent = 0
        self._needed: int | None = None
        self._finals: list[StreamSegment] = []
        self._partial = ""

    def options(self, options: TranscribeOptions, *, words: bool) -> TranscribeOptions:
        return replace(
            options, word_timestamps=words and self.capabilities.word_timestamps, vad_filter=False
        )

    def open_segment(self) -> None:
        super().open_segment()
        stream, self._stream = self._stream, None
        if stream is not None:
            asyncio.get_running_loop().create_task(self._close(stream))
        self._sent, self._needed, self._finals, self._partial = 0, None, [], ""

    def next_partial_samples(self) -> int | None:
        return self._needed

    async def _close(self, stream: str) -> None:
        try:
            await self.handle.stream_close.remote(session_id=stream)
        except Exception as exc:  # the replica may be gone; its state went with it
            logger.debug("closing stream %s failed: %r", stream, exc)

    async def _open(self, options: TranscribeOptions) -> str:
        self._count += 1
        stream = f"{self._prefix}-{self._count}"
        await asyncio.wait_for(
            self.handle.stream_open.remote(
                session_id=stream, options=self.options(options, words=False)
            ),
            self.timeout_s,
        )
        self._stream, self._sent, self._finals, self._partial = stream, 0, [], ""
        return stream

    async def _accept(self, stream: str, audio: Audio) -> StreamStep:
        step: StreamStep = await asyncio.wait_for(
            self.handle.stream_accept.remote(session_id=stream, audio=audio), self.timeout_s
        )
        return step

    async def partial(self, audio: Audio, options: TranscribeOptions) -> PartialText | None:
        if self._stream is None:
            await self._open(options)
        assert self._stream is not None
        try:
            step = await self._accept(self._stream, audio[self._sent :])
        except Exception as exc:
            logger.warning("stream %s lost (%r): reopening and replaying", self._stream, exc)
            stream = await self._open(options)
            step = await self._accept(stream, audio)
        self._sent, self._needed = len(audio), step.needed_samples
        if not step.segments:
            return None
        for update in step.segments:
            if update.is_final:
                self._finals.append(update)
                self._partial = ""
            else:
                self._partial = update.text
        words = " ".join([*(f.text for f in self._finals), self._partial]).split()
        return self.hypothesis(words)

    async def decode_final(
        self,
        audio: Audio,
        options: TranscribeOptions,
        *,
        closing: bool = False,
        silence_after: bool = False,
    ) -> TranscriptionResult:
        stream, self._stream = (self._stream, None) if closing else (None, self._stream)
        if stream is not None and (self._sent <= len(audio) or silence_after):
            try:
                finals = await asyncio.wait_for(
                    self.handle.stream_finish.remote(
                        session_id=stream, audio=audio[min(self._sent, len(audio)) :]
                    ),
                    self.timeout_s,
                )
                language = options.language or (finals[0].language if finals else None)
                return stream_result(
                    [*self._finals, *finals], len(audio) / SAMPLE_RATE, language or ""
                )
            except Exception as exc:
                logger.warning("stream %s could not finish (%r): decoding again", stream, exc)
        elif stream is not None:
            asyncio.get_running_loop().create_task(self._close(stream))
        decode = self.options(options, words=True)
        return await transcribe_once(self.transcribe, audio, decode, self.timeout_s)

    def final_words(self, segments: list[SegmentResult]) -> tuple[list[str], list[WordTiming]]:
        """The engine's words as they are (keypad symbols too), with their timings."""
        timings = [
            WordTiming(w.word.strip(), w.start, w.end, w.probability)
            for s in segments
            for w in s.words
            if w.word.strip()
        ]
        words = [w.word for w in timings] or " ".join(s.text for s in segments).split()
        return words, timings if len(timings) == len(words) else []
