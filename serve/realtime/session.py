"""The realtime session engine, shared by both wire protocols.

`feed` (called by the transport for every audio message; cheap and synchronous apart from
sending events) resamples, writes the ring buffer, runs the VAD frame by frame and turns
speech boundaries into events (sent at once: speech start, segment closed) and jobs (a final
per closed segment). `run` (one task per session) works through those jobs in order and, when
idle, re-decodes the open segment for partials or decodes a segment in its trailing pause
ahead of its end (so the final is ready when the silence timeout expires, and so a confirmed
sentence end can be committed early). Every engine call goes through the partial policy;
optional decodes take turns with other sessions (`gate.PartialGate`).

Events go out in the order they happen through one outbox: a segment's `SegmentClosed`
always precedes its final, and VAD events never wait for a decode.
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
    SegmentClosed,
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
from serve.realtime.policy import CommitRules, PartialPolicy, PartialText
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
    cut: int | None = None
    """The end of a pause inside speech (its start + tail padding) not yet tried as an early
    commit."""


@dataclass(frozen=True)
class _End:
    start: int
    end: int
    speech_end: int | None
    in_pause: bool = False
    """The segment ends in a pause (VAD end or early commit): audio after `end` is silence."""


@dataclass(frozen=True)
class _Close:
    reason: CloseReason


_Job = _End | _Close


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
        self._commit_key: tuple[int, int] | None = None
        """The speculative decode proposed as an early commit, waiting for a later partial."""
        self._shown: tuple[int, str, str] | None = None
        """The last partial sent (segment id, stable, unstable)."""
        self._clock_ms = 0
        """The latest stream time sent (partials and VAD events never go back)."""
        self._outbox: deque[SessionEvent] = deque()
        self._sending = asyncio.Lock()

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
            self._outbox.append(RateLimited(advice.delay_ms, advice.ratio))
        free = self.ring.free
        if len(audio) > free:
            dropped = self.drops.add(to_ms(len(audio) - free), now)
            audio = audio[:free]
            if dropped is not None:
                self._outbox.append(FramesDropped(dropped))
        if len(audio):
            self.ring.write(audio)
            self._process_frames()
            self._update_fence()
            self._wake.set()
        await self._publish()

    async def _publish(self, *events: SessionEvent) -> None:
        """Send `events` after everything already in the outbox, in order."""
        self._outbox.extend(events)
        async with self._sending:
            while self._outbox:
                event = self._outbox.popleft()
                if isinstance(event, SpeechStarted | PartialTranscript):
                    self._clock_ms = max(self._clock_ms, event.timestamp_ms)
                elif isinstance(event, SegmentClosed) and event.speech_end_ms is not None:
                    self._clock_ms = max(self._clock_ms, event.speech_end_ms)
                await self.emit(event)

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
                self._outbox.append(SpeechStarted(to_ms(event.sample), to_ms(segment.start)))
            elif isinstance(event, PauseStarted) and self._segment is not None:
                self._segment.pause_start = event.sample
            elif isinstance(event, PauseEnded) and self._segment is not None:
                self._pause_ended(self._segment, event.sample)
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
            self._outbox.append(SessionHeld(to_ms(end), self.config.hold_timeout_ms))
        elif timeout is Timeout.EXPIRED:
            self._begin_close("inactivity_timeout")

    def _pause_ended(self, segment: _Segment, sample: int) -> None:
        """Speech goes on after a pause: long enough (the tail padding), its end is a place to
        commit early at, if the words so far may end there. Until that is decided, no word
        after it is confirmed (a final never takes words of the next segment)."""
        pause_start, segment.pause_start = segment.pause_start, None
        pad = to_samples(self.settings.tail_padding_ms)
        if pause_start is None or sample - pause_start < pad or self._commit_rules() is None:
            return
        key = (segment.start, pause_start + pad)
        tried = self._commit_key == key or (
            self._speculative is not None and self._speculative[0] == key
        )
        rules = self._commit_rules()
        if not tried and rules is not None and self.policy.could_commit(rules):
            segment.cut = key[1]
            self.policy.hold()

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

    def _close_segment(self, end: int, speech_end: int | None, in_pause: bool = False) -> None:
        assert self._segment is not None
        start = self._segment.start
        end = max(end, start)
        self._jobs.append(_End(start, end, speech_end, in_pause or speech_end is not None))
        self._unfinished.append(start)
        self._last_end = end
        self._segment = None
        speech_end_ms = to_ms(speech_end) if speech_end is not None else None
        self._outbox.append(SegmentClosed(speech_end_ms, to_ms(end)))

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
            self._jobs.clear()
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
                await self._publish()
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
                self.partial_gate.withdraw(self._wake)
            if self.machine.state is not SessionState.CLOSED:
                self.machine.closed()
            self.closed.set()

    async def _handle(self, job: _End) -> None:
        try:
            await self._finalize(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("session %s: final failed", self.session_id)
            self._segment_finished()
            await self._publish(
                Problem("internal_error", "The utterance could not be transcribed.")
            )

    async def _finalize(self, job: _End) -> None:
        start = job.start if self._carry_start is None else min(job.start, self._carry_start)
        options = self._options()
        segment_id = self._next_id
        audio_end_ms = to_ms(job.end)
        speculative = self._speculative
        self._speculative = None
        try:
            if speculative is not None and speculative[0] == (start, job.end):
                result = speculative[1]
            else:
                audio = self.ring.read(start, job.end)
                result = await self._decode_final(audio, options, job.in_pause)
        except EngineFailureError as exc:
            self._carry_start = start
            shown = self._shown
            self._segment_finished()
            events: list[SessionEvent] = [SegmentFailed(segment_id, str(exc), audio_end_ms)]
            if shown is not None and not shown[1]:
                events.insert(0, self._retraction(segment_id, audio_end_ms))
            await self._publish(*events)
            return
        self._carry_start = None
        final = self._post_process(self.policy.finish(result, to_ms(start)))
        shown = self._shown
        self._segment_finished()
        if final is not None:
            self._next_id += 1
            self.segments_transcribed += 1
            usable_context = self.capabilities.initial_prompt and not self.policy.looped
            self._previous_text = final.text if usable_context else None
            await self._publish(SegmentDone(segment_id, final, audio_end_ms))
            return
        # No speech after all: take back the unstable text shown (nothing was confirmed).
        retract = [self._retraction(segment_id, audio_end_ms)] if shown is not None else []
        await self._publish(*retract, SegmentDone(segment_id, final, audio_end_ms))

    def _retraction(self, segment_id: int, audio_end_ms: int) -> PartialTranscript:
        return PartialTranscript(segment_id, "", "", max(audio_end_ms, self._clock_ms))

    async def _decode_final(
        self, audio: Audio, options: TranscribeOptions, in_pause: bool
    ) -> TranscriptionResult:
        """The final's decode, retried; optional decodes of the replica wait meanwhile."""
        if self.partial_gate is not None:
            self.partial_gate.final_started()
        try:
            return await retrying(
                lambda: self.policy.decode_final(
                    audio, options, closing=True, silence_after=in_pause
                ),
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
        self._commit_key = None
        self._shown = None
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
        the session has its turn in the replica's partial rounds). Returns whether it did any
        work."""
        segment = self._segment
        gate = self.partial_gate
        if segment is None:
            if gate is not None:
                gate.withdraw(self._wake)
            return False
        position = self.position
        pad = to_samples(self.settings.tail_padding_ms)
        if segment.pause_start is not None and self.policy.speculative_finals:
            return await self._speculate(segment, position, pad)
        if segment.cut is not None and self._commit_key is None:
            cut, segment.cut = segment.cut, None
            return await self._decode_to(segment, (segment.start, cut))
        if not self.config.enable_partial_transcripts:
            return False
        first = self._partial_mark == 0
        mark = max(self._partial_mark, segment.onset)
        needed = self.policy.next_partial_samples()
        if needed is None:
            interval_ms = self.policy.partial_interval_ms or self.settings.partial_interval_ms
            if first:
                interval_ms = min(interval_ms, self.settings.first_partial_ms)
            needed = to_samples(interval_ms)
        if position - mark < needed:
            if gate is not None:
                gate.withdraw(self._wake)
            return False
        gate = gate if self.policy.gated else None
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
        if self._segment is not segment:
            return True  # closed meanwhile: its final says the rest
        if text is not None:
            await self._show(segment, text, position)
        if self._commit_key is not None:
            self._decide_commit(segment)
        return True

    async def _show(self, segment: _Segment, text: PartialText, position: int) -> None:
        """Send the newest hypothesis of the open segment, unless it is the one shown."""
        if not self.config.enable_partial_transcripts or self._segment is not segment:
            return
        shown = (self._next_id, text.stable, text.unstable)
        if shown == self._shown or not (text.stable or text.unstable or self._shown):
            return
        self._shown = shown
        timestamp = max(to_ms(position), self._clock_ms)
        await self._publish(PartialTranscript(self._next_id, text.stable, text.unstable, timestamp))

    async def _speculate(self, segment: _Segment, position: int, pad: int) -> bool:
        """In a pause, decode the segment as its final would be, before the silence timeout
        says it is one (the result is used if the pause becomes the end of speech)."""
        assert segment.pause_start is not None
        key = (segment.start, segment.pause_start + pad)
        done = self._speculative is not None and self._speculative[0] == key
        if position < key[1] or done or self._carry_start is not None:
            if self.partial_gate is not None:
                self.partial_gate.withdraw(self._wake)
            return False
        return await self._decode_to(segment, key)

    async def _decode_to(self, segment: _Segment, key: tuple[int, int]) -> bool:
        """Decode the segment up to the end of a pause (`key`: its start and that end) as its
        final would be: the final if the pause ends the speech; if speech goes on, an early
        commit when the next partial confirms that the words end there."""
        gate = self.partial_gate
        if gate is not None and not gate.try_acquire(self._wake):
            if segment.pause_start is None:
                segment.cut = key[1]  # try again on the next turn
            return False
        try:
            result = await self.policy.decode_final(self.ring.read(*key), self._options())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("speculative final failed: %r", exc)
            self.policy.withdraw_commit()
            return False
        finally:
            if gate is not None:
                gate.release()
        self._speculative = (key, result)
        if self._segment is not segment:
            return True  # closed meanwhile: its final uses this decode if the ends match
        if segment.pause_start is not None:
            text = self.policy.observe(result)
            if text is not None:
                await self._show(segment, text, key[1])
        rules = self._commit_rules()
        if rules is not None and self._carry_start is None and self.policy.propose_commit(result):
            self._commit_key = key
        return True

    def _commit_rules(self) -> CommitRules | None:
        config = self.config
        if not config.vad_enabled or not (config.commit_sentences or config.commit_after_words):
            return None
        return CommitRules(config.commit_sentences, config.commit_after_words)

    def _decide_commit(self, segment: _Segment) -> None:
        """After a partial that heard past a proposed pause: commit the segment up to the
        pause (its final is the speculative decode), or drop the proposal."""
        key = self._commit_key
        rules = self._commit_rules()
        speculative = self._speculative
        if key is None or rules is None or speculative is None or speculative[0] != key:
            self._commit_key = None
            self.policy.withdraw_commit()
            return
        decision = self.policy.commit_decision(rules)
        if decision is None:
            return
        self._commit_key = None
        if decision and key[0] == segment.start:
            self._close_segment(key[1], None, in_pause=True)
            self._continue(key[1])
            self._update_fence()
        else:
            self.policy.withdraw_commit()

    async def _finish(self, reason: CloseReason) -> None:
        self.close_reason = reason
        self.machine.closed()
        dropped = self.drops.take(self.clock(), force=True)
        if dropped is not None:
            self._outbox.append(FramesDropped(dropped))
        await self._publish(SessionEnded(reason, to_ms(self.position), self.segments_transcribed))
        self.closed.set()
