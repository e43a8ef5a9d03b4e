"""Native partials: the engine's own streaming decoder, chunk by chunk, for models whose
engine streams natively (`engines.spec.streams_natively`; WeNet's CTC models).

Each VAD segment opens a decoding stream on a sticky streaming replica (`session_id=` routes
every call of the stream to the replica holding its decoder state). New audio goes in as it
arrives and the engine answers with a partial per processed chunk. No LocalAgreement is
involved. The final is decoded again from the segment's audio with full context, like
WeNet's second pass. That decode is stateless, so if a replica dies the session's retry
replays the ring buffer on any live replica. A stream lost with its replica is reopened and
fed the segment's audio again, so partials resume.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from typing import Any

from engines.base import Audio, StreamSegment, TranscribeOptions, TranscriptionResult, WordTiming
from engines.manifest import Capabilities
from engines.text import join_words
from serve.realtime.engine import Transcriber, transcribe_once
from serve.realtime.events import FinalTranscript
from serve.realtime.hypothesis import confidence, usable_segments
from serve.realtime.policy import PartialPolicy

logger = logging.getLogger(__name__)

NATIVE_PARTIAL_INTERVAL_MS = 160
"""How much new audio makes the session hand it to the engine: small, because the engine
decides when a chunk is complete and a partial should go out as soon as it is."""


class NativePartialPolicy(PartialPolicy):
    partial_interval_ms = NATIVE_PARTIAL_INTERVAL_MS
    gated = False

    def __init__(
        self,
        handle: Any,
        transcribe: Transcriber,
        capabilities: Capabilities,
        timeout_s: float,
    ) -> None:
        self.handle = handle
        self.transcribe = transcribe
        self.capabilities = capabilities
        self.timeout_s = timeout_s
        self.looped = False
        self._prefix = uuid.uuid4().hex
        self._count = 0
        self._stream: str | None = None
        self._sent = 0
        self._finals: list[str] = []
        self._last = ""

    def options(self, options: TranscribeOptions, *, words: bool) -> TranscribeOptions:
        return replace(
            options, word_timestamps=words and self.capabilities.word_timestamps, vad_filter=False
        )

    def open_segment(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            asyncio.get_running_loop().create_task(self._close(stream))
        self._sent, self._finals, self._last = 0, [], ""

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
        self._stream, self._sent, self._finals = stream, 0, []
        return stream

    async def _accept(self, stream: str, audio: Audio) -> list[StreamSegment]:
        segments: list[StreamSegment] = await asyncio.wait_for(
            self.handle.stream_accept.remote(session_id=stream, audio=audio), self.timeout_s
        )
        return segments

    async def partial(self, audio: Audio, options: TranscribeOptions) -> str | None:
        if self._stream is None:
            await self._open(options)
        assert self._stream is not None
        try:
            updates = await self._accept(self._stream, audio[self._sent :])
        except Exception as exc:
            logger.warning("stream %s lost (%r): reopening and replaying", self._stream, exc)
            stream = await self._open(options)
            updates = await self._accept(stream, audio)
        self._sent = len(audio)
        partial = ""
        for update in updates:
            if update.is_final:
                self._finals.append(update.text)
                partial = ""
            else:
                partial = update.text
        text = join_words([*self._finals, partial] if partial else self._finals)
        if not updates or not text or text == self._last:
            return None
        self._last = text
        return text

    async def decode_final(self, audio: Audio, options: TranscribeOptions) -> TranscriptionResult:
        decode = self.options(options, words=True)
        return await transcribe_once(self.transcribe, audio, decode, self.timeout_s)

    def finish(self, result: TranscriptionResult, offset_ms: int) -> FinalTranscript | None:
        segments = usable_segments(result)
        if not segments:
            return None
        offset = offset_ms / 1000
        words = tuple(
            WordTiming(w.word.strip(), round(w.start + offset, 3), round(w.end + offset, 3))
            for s in segments
            for w in s.words
        )
        return FinalTranscript(
            text=join_words([s.text.strip() for s in segments]),
            start_ms=offset_ms + round(segments[0].start * 1000),
            end_ms=offset_ms + round(segments[-1].end * 1000),
            language=result.language,
            confidence=confidence(segments),
            words=words,
            audio_ms=round(result.duration * 1000),
        )
