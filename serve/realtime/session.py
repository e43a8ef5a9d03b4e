"""The realtime session engine, shared by both wire protocols.

`feed` (called by the transport for every audio message; cheap and synchronous apart from
sending rate/drop advice) resamples, writes the ring buffer, runs the VAD frame by frame and
turns speech boundaries into jobs. `run` (one task per session) works through those jobs in
order - speech start, segment end (final) - and, when idle, re-decodes the open segment for
partials or decodes a segment in its trailing pause ahead of its end (so the final is ready
when the silence timeout expires). Every engine call goes through the partial policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engines.base import SAMPLE_RATE, Audio, TranscribeOptions, TranscriptionResult
from engines.manifest import Capabilities
from serve.languages import LanguageError, validate_language
from serve.realtime.backpressure import DropReport, RateMeter
from serve.realtime.context import decode_options
from serve.realtime.endpoint import (
    Endpointer,
    PauseEnded,
    PauseStarted,
    SpeechEnded,
)
from serve.realtime.endpoint import (
    SpeechStarted as VadSpeechStarted,
)
from serve.realtime.engine import EngineFailureError, retrying
from serve.realtime.events import (
    CloseReason,
    FinalTranscript,
    FramesDropped,
    PartialTranscript,
    Problem,
    RateLimited,
    SegmentDone,
    SegmentFailed,
    SessionEnded,
    SessionEvent,
    SessionHeld,
    SpeechStarted,
)
from serve.realtime.gate import PartialGate
from serve.realtime.itn import apply_itn
from serve.realtime.machine import SessionState, StateMachine, Timeout
from serve.realtime.pcm import pcm16_to_float
from serve.realtime.policy import PartialPolicy
from serve.realtime.protocol import ProtocolError, SessionConfig
from serve.realtime.resample import StreamResampler
from serve.realtime.ring import RingBuffer
from serve.realtime.settings import RealtimeSettings
from serve.realtime.vad import FRAME_SAMPLES, FrameVad, SileroModel, thresholds_for

logger = logging.getLogger(__name__)

Emit = Callable[[SessionEvent], Awaitable[None]]
FORCE_COMMIT_FILL = 0.9
MIN_FORCED_SEGMENT = SAMPLE_RATE


def to_ms(samples: int) -> int:
    return samples * 1000 // SAMPLE_RATE


def to_samples(ms: int) -> int:
    return ms * SAMPLE_RATE // 1000


@dataclass
class _Segment:
    start: int
    """First sample of the segment's audio (the speech onset less the prefix padding)."""
    onset: int
    """Where speech was detected (partials count new audio from here)."""
    pause_start: int | None = None


@dataclass(frozen=True)
class _End:
    start: int
    end: int
    speech_end: int | None


@dataclass(frozen=True)
class _Emit:
    event: SessionEvent


@dataclass(frozen=True)
class _Close:
    reason: CloseReason


_Job = _End | _Emit | _Close


class StreamingSession:
    def __init__(
        self,
        *,
        session_id: str,
        model: str,
        capabilities: Capabilities,
        policy: PartialPolicy,
        config: SessionConfig,
        settings: RealtimeSettings,
        vad_model: SileroModel,
        emit: Emit,
        partial_gate: PartialGate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_id = session_id
        self.model = model
        self.capabilities = capabilities
        self.policy = policy
        self.settings = settings
        self.emit = emit
        self.partial_gate = partial_gate
        self.clock = clock
        self.ring = RingBuffer(round(settings.ring_buffer_s * SAMPLE_RATE))
        self.rate = RateMeter(settings.rate_limit_factor, settings.rate_limit_burst_s)
        self.drops = DropReport()
        self.vad = FrameVad(vad_model, thresholds_for(config.vad_sensitivity))
        self.config = config
        self.machine = StateMachine(0, 0)
        self.endpointer = Endpointer(self.vad.thresholds, config.silence_timeout_ms)
        self.resampler = StreamResampler(config.input_sample_rate)
        self.configure(config)
        self.segments_transcribed = 0
        self.closed = asyncio.Event()
        self.close_reason: CloseReason | None = None
        self._jobs: deque[_Job] = deque()
        self._wake = asyncio.Event()
        self._vad_position = 0
        self._segment: _Segment | None = None
        self._unfinished: deque[int] = deque()
        self._last_end = 0
        self._carry_start: int | None = None
        self._next_id = 0
        self._previous_text: str | None = None
        self._partial_mark = 0
        self._speculative: tuple[tuple[int, int], TranscriptionResult] | None = None

    # -- configuration -----------------------------------------------------------------------
    def use_model(self, model: str, capabilities: Capabilities, policy: PartialPolicy) -> None:
        """Transcribe with another model from now on (before any audio: the protocol checks)."""
        self.model, self.capabilities, self.policy = model, capabilities, policy

    def configure(self, config: SessionConfig) -> None:
        """Apply a (validated) configuration; speech in progress is kept. Raises
        `ProtocolError` (and changes nothing) for a language the model does not support."""
        try:
            validate_language(config.language, self.capabilities.languages, self.model)
        except LanguageError as exc:
            raise ProtocolError("invalid_value", str(exc), "language") from None
        old = self.config
        self.config = config
        thresholds = thresholds_for(config.vad_sensitivity, config.vad_threshold)
        self.vad.thresholds = thresholds
        self.endpointer.thresholds = thresholds
        self.endpointer.min_speech = to_samples(thresholds.min_speech_ms)
        self.endpointer.silence_timeout = to_samples(config.silence_timeout_ms)
        self.machine.hold_timeout = to_samples(config.hold_timeout_ms)
        self.machine.inactivity_timeout = to_samples(config.inactivity_timeout_ms)
        if config.input_sample_rate != old.input_sample_rate:
            self.resampler = StreamResampler(config.input_sample_rate)

    @property
    def state(self) -> SessionState:
        return self.machine.state

    @property
    def position(self) -> int:
        return self.ring.written

    # -- audio in ----------------------------------------------------------------------------
    async def feed_pcm16(self, data: bytes) -> None:
        """PCM16 LE mono at the configured input rate (raises `PcmError` on odd lengths)."""
        await self.feed_audio(pcm16_to_float(data), self.config.input_sample_rate)

    async def feed_audio(self, audio: Audio, rate: int) -> None:
        if rate != self.resampler.rate:
            self.resampler = StreamResampler(rate)
        await self.feed(self.resampler.process(audio), len(audio) / rate)

    async def feed(self, audio: Audio, received_s: float | None = None) -> None:
        """16 kHz audio. `received_s` is its duration as sent (before resampling)."""
        if not self.machine.open:
            return
        now = self.clock()
        advice = self.rate.observe(
            received_s if received_s is not None else len(audio) / SAMPLE_RATE, now
        )
        if advice is not None:
            await self.emit(RateLimited(advice.delay_ms, advice.ratio))
        free = self.ring.free
        if len(audio) > free:
            dropped = self.drops.add(to_ms(len(audio) - free), now)
            audio = audio[:free]
            if dropped is not None:
                await self.emit(FramesDropped(dropped))
        if len(audio):
            self.ring.write(audio)
            self._process_frames()
            self._update_fence()
            self._wake.set()

    def _process_frames(self) -> None:
        while self.machine.open and self.ring.written - self._vad_position >= FRAME_SAMPLES:
            start, end = self._vad_position, self._vad_position + FRAME_SAMPLES
            self._vad_position = end
            if self.config.vad_enabled:
                probability = self.vad.probability(self.ring.read(start, end))
                self._on_vad(probability, start, end)
            elif self._segment is None:
                self._open(start)
            self._maybe_split(end)

    def _on_vad(self, probability: float, start: int, end: int) -> None:
        for event in self.endpointer.push(probability, start, end):
            if isinstance(event, VadSpeechStarted):
                self.machine.speech_started()
                segment = self._open(event.sample, to_samples(self.config.prefix_padding_ms))
                started = SpeechStarted(to_ms(event.sample), to_ms(segment.start))
                self._jobs.append(_Emit(started))
            elif isinstance(event, PauseStarted) and self._segment is not None:
                self._segment.pause_start = event.sample
            elif isinstance(event, PauseEnded) and self._segment is not None:
                self._segment.pause_start = None
            elif isinstance(event, SpeechEnded):
                self.machine.speech_ended(event.detected_at)
                if self._segment is not None:
                    pad = to_samples(self.settings.tail_padding_ms)
                    self._close_segment(
                        min(event.sample + pad, event.detected_at), event.detected_at
                    )
        timeout = self.machine.tick(end)
        if timeout is Timeout.HOLD:
            self._previous_text = None
            self._jobs.append(_Emit(SessionHeld(to_ms(end), self.config.hold_timeout_ms)))
        elif timeout is Timeout.EXPIRED:
            self._begin_close("inactivity_timeout")

    def _maybe_split(self, end: int) -> None:
        """Force a final when a segment reaches its maximum length or the ring is nearly full."""
        segment = self._segment
        if segment is None:
            return
        length = end - segment.start
        too_long = length >= to_samples(self.config.max_segment_duration_ms)
        too_full = self.ring.fill_ratio >= FORCE_COMMIT_FILL and length >= MIN_FORCED_SEGMENT
        if too_long or too_full:
            self._close_segment(end, None)
            self._continue(end)

    def _continue(self, start: int) -> None:
        """After a forced final in the middle of speech, the utterance goes on in a new segment."""
        if self.config.vad_enabled and not self.endpointer.in_speech:
            return
        segment = self._open(start)
        if self.endpointer.pause_start is not None:
            segment.pause_start = segment.start

    def _open(self, onset: int, padding: int = 0) -> _Segment:
        start = max(onset - padding, self.ring.fence, self._last_end)
        self._segment = _Segment(start, max(onset, start))
        return self._segment

    def _close_segment(self, end: int, speech_end: int | None) -> None:
        assert self._segment is not None
        start = self._segment.start
        end = max(end, start)
        self._jobs.append(_End(start, end, speech_end))
        self._unfinished.append(start)
        self._last_end = end
        self._segment = None

    def _update_fence(self) -> None:
        needed = [self._vad_position - to_samples(self.config.prefix_padding_ms), self._last_end]
        if self._unfinished:
            needed.append(self._unfinished[0])
        if self._segment is not None:
            needed.append(self._segment.start)
        if self._carry_start is not None:
            needed.append(self._carry_start)
        self.ring.set_fence(min(needed))

    # -- client commands ---------------------------------------------------------------------
    def commit(self) -> bool:
        """Close the open segment now (its final follows). False if there is nothing to commit."""
        if not self.machine.open:
            return False
        if self._segment is None:
            if self._carry_start is None or self.position <= self._last_end:
                return False
            self._segment = _Segment(self._carry_start, self._carry_start)
        self._close_segment(self.position, None)
        self._continue(self.position)
        self._update_fence()
        self._wake.set()
        return True

    def clear(self) -> None:
        """Forget the audio of the open segment (OpenAI `input_audio_buffer.clear`)."""
        if not self.machine.open:
            return
        self._segment = None
        self._carry_start = None
        self._last_end = self.position
        if self.endpointer.in_speech:
            self.endpointer.reset()
            self.machine.speech_ended(self.position)
        self._update_fence()

    async def close(self, reason: CloseReason) -> None:
        """Flush (unless cancelled) and end the session; `run` sends `session.closed`."""
        self._begin_close(reason)

    def _begin_close(self, reason: CloseReason) -> None:
        if not self.machine.open:
            return
        if reason == "cancelled":
            self._jobs = deque(job for job in self._jobs if isinstance(job, _Emit))
            self._segment = None
        elif self._segment is not None:
            speech_end = self.position if self.endpointer.in_speech else None
            self._close_segment(self.position, speech_end)
        self.machine.closing()
        self._jobs.append(_Close(reason))
        self._wake.set()

    # -- the worker --------------------------------------------------------------------------
    async def run(self) -> None:
        """Work through jobs until the session closes; returns after `session.closed`."""
        try:
            while True:
                if self._jobs:
                    job = self._jobs.popleft()
                    if isinstance(job, _Close):
                        await self._finish(job.reason)
                        return
                    await self._handle(job)
                    continue
                if await self._idle_work():
                    continue
                self._wake.clear()
                await self._wake.wait()
        finally:
            if self.partial_gate is not None:
                self.partial_gate.forget(self._wake)
            if self.machine.state is not SessionState.CLOSED:
                self.machine.closed()
            self.closed.set()

    async def _handle(self, job: _End | _Emit) -> None:
        if isinstance(job, _Emit):
            await self.emit(job.event)
            return
        try:
            await self._finalize(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("session %s: final failed", self.session_id)
            self._segment_finished()
            await self.emit(Problem("internal_error", "The utterance could not be transcribed."))

    async def _finalize(self, job: _End) -> None:
        start = job.start if self._carry_start is None else min(job.start, self._carry_start)
        options = self._options()
        segment_id = self._next_id
        audio_end_ms = to_ms(job.end)
        speech_end_ms = to_ms(job.speech_end) if job.speech_end is not None else None
        speculative = self._speculative
        self._speculative = None
        try:
            if speculative is not None and speculative[0] == (start, job.end):
                result = speculative[1]
            else:
                audio = self.ring.read(start, job.end)
                result = await self._decode_final(audio, options)
        except EngineFailureError as exc:
            self._carry_start = start
            self._segment_finished()
            await self.emit(SegmentFailed(segment_id, str(exc), speech_end_ms, audio_end_ms))
            return
        self._carry_start = None
        final = self._post_process(self.policy.finish(result, to_ms(start)))
        self._segment_finished()
        if final is not None:
            self._next_id += 1
            self.segments_transcribed += 1
            usable_context = self.capabilities.initial_prompt and not self.policy.looped
            self._previous_text = final.text if usable_context else None
        await self.emit(SegmentDone(segment_id, final, speech_end_ms, audio_end_ms))

    async def _decode_final(self, audio: Audio, options: TranscribeOptions) -> TranscriptionResult:
        """The final's decode, retried; optional decodes of the replica wait meanwhile."""
        if self.partial_gate is not None:
            self.partial_gate.final_started()
        try:
            return await retrying(
                lambda: self.policy.decode_final(audio, options),
                retry_window_s=self.settings.retry_window_s,
            )
        finally:
            if self.partial_gate is not None:
                self.partial_gate.final_done()

    def _segment_finished(self) -> None:
        if self._unfinished:
            self._unfinished.popleft()
        self.policy.open_segment()
        self._partial_mark = 0
        self._update_fence()

    def _post_process(self, final: FinalTranscript | None) -> FinalTranscript | None:
        if final is None or not self.config.enable_itn:
            return final
        text = apply_itn(final.text, final.language)
        if text == final.text:
            return final
        return FinalTranscript(
            text,
            final.start_ms,
            final.end_ms,
            final.language,
            final.confidence,
            final.words,
            final.audio_ms,
        )

    def _options(self) -> TranscribeOptions:
        previous = None if self.policy.looped else self._previous_text
        return decode_options(
            self.capabilities,
            self.config.hot_words,
            previous,
            max_prompt_chars=self.settings.max_prompt_chars,
            session_prompt=self.config.prompt,
            language=self.config.language,
            find_speech=not self.config.vad_enabled,
        )

    async def _idle_work(self) -> bool:
        """In a pause, a speculative final; otherwise a partial once enough audio is new (and
        the replica's partial gate has a slot). Returns whether it did any work."""
        segment = self._segment
        if segment is None:
            return False
        position = self.position
        pad = to_samples(self.settings.tail_padding_ms)
        if segment.pause_start is not None:
            return await self._speculate(segment, position, pad)
        if not self.config.enable_partial_transcripts:
            return False
        mark = max(self._partial_mark, segment.onset)
        interval_ms = self.policy.partial_interval_ms or self.settings.partial_interval_ms
        if position - mark < to_samples(interval_ms):
            return False
        gate = self.partial_gate if self.policy.gated else None
        if gate is not None and not gate.try_acquire(self._wake):
            return False
        self._partial_mark = position
        audio = self.ring.read(segment.start, position)
        try:
            text = await self.policy.partial(audio, self._options())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("partial decode failed: %r", exc)
            return True
        finally:
            if gate is not None:
                gate.release()
        if text is not None and self._is_open(segment):
            await self.emit(PartialTranscript(self._next_id, text, to_ms(position)))
        return True

    async def _speculate(self, segment: _Segment, position: int, pad: int) -> bool:
        """In a pause, decode the segment as its final would be, before the silence timeout
        says it is one (the result is used if the pause becomes the end of speech)."""
        assert segment.pause_start is not None
        key = (segment.start, segment.pause_start + pad)
        done = self._speculative is not None and self._speculative[0] == key
        if position < key[1] or done or self._carry_start is not None:
            return False
        if self.partial_gate is not None and not self.partial_gate.try_acquire(self._wake):
            return False
        try:
            result = await self.policy.decode_final(self.ring.read(*key), self._options())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("speculative final failed: %r", exc)
            return False
        finally:
            if self.partial_gate is not None:
                self.partial_gate.release()
        self._speculative = (key, result)
        text = self.policy.observe(result)
        if text is not None and self.config.enable_partial_transcripts and self._is_open(segment):
            await self.emit(PartialTranscript(self._next_id, text, to_ms(key[1])))
        return True

    def _is_open(self, segment: _Segment) -> bool:
        """Still the open segment, or closed and waiting for its final (not cleared)."""
        return self._segment is segment or segment.start in self._unfinished

    async def _finish(self, reason: CloseReason) -> None:
        self.close_reason = reason
        self.machine.closed()
        dropped = self.drops.take(self.clock(), force=True)
        if dropped is not None:
            await self.emit(FramesDropped(dropped))
        await self.emit(SessionEnded(reason, to_ms(self.position), self.segments_transcribed))
        self.closed.set()
