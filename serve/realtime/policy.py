"""Partial policies: how an engine's output becomes partials and finals in a session.

`serve.realtime.model.choose_policy` picks one per session from what the model's engine and
manifest declare (`engines.spec.streams_natively`): native partials from the engine's own
streaming state (`native_partials.NativePartialPolicy`), or re-decoding the open segment
(`redecode.LocalAgreementPolicy`). Both read each new hypothesis of the open segment through
LocalAgreement-2 (`agreement.py`): the words two consecutive hypotheses agree on are stable
(never taken back, a prefix of the final), the rest is the unstable tail.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from engines.base import (
    Audio,
    SegmentResult,
    TranscribeOptions,
    TranscriptionResult,
    WordTiming,
)
from serve.realtime.agreement import (
    LocalAgreement,
    commit_point,
    ends_sentence,
    join_words,
    trim_loop,
)
from serve.realtime.events import FinalTranscript
from serve.realtime.hypothesis import confidence, text_words, timed_words, usable_segments


@dataclass(frozen=True)
class PartialText:
    """The newest hypothesis of the open segment, split at what is confirmed."""

    stable: str
    unstable: str

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.stable, self.unstable) if part)


@dataclass(frozen=True)
class CommitRules:
    """When a segment may be committed early, at a pause inside speech."""

    sentence_end: bool = True
    max_words: int = 0
    """Commit at a pause once the segment holds this many agreed words (0: only at sentence
    ends)."""


class PartialPolicy(abc.ABC):
    """Per-session streaming logic over one engine. Segments are decoded from their start;
    `decode_final` is one attempt, so the session can re-run it from its ring buffer."""

    looped: bool = False
    """A repetition loop was seen: the session stops giving the engine prompt context."""
    partial_interval_ms: int | None = None
    """New audio that triggers a partial; None uses the session setting."""
    gated: bool = True
    """Partials take turns in the replica's partial rounds (they share a batcher with
    finals). Native streams feed state that later partials need, so they are not gated."""
    speculative_finals: bool = True
    """Decode the segment in a pause, before the silence timeout says it ended (the final is
    ready sooner; the decode is wasted when speech resumes). Worth it where a final costs
    much more than the engine's steady work (Whisper); the pause is also where an early commit
    is tried."""

    def __init__(self) -> None:
        self.agreement = LocalAgreement()
        self._candidate: list[str] | None = None

    def open_segment(self) -> None:
        """A new segment starts: forget the previous one's partial state."""
        self.agreement = LocalAgreement()
        self._candidate = None

    def next_partial_samples(self) -> int | None:
        """New audio (samples) the next partial needs, if the engine said; None: the interval."""
        return None

    @abc.abstractmethod
    async def partial(self, audio: Audio, options: TranscribeOptions) -> PartialText | None:
        """The open segment so far; returns its newest hypothesis, or None if the engine
        decoded nothing new. `options`: the session's language, prompt and hot words."""

    def observe(self, result: TranscriptionResult) -> PartialText | None:
        """A whole-segment decode made for another reason (a speculative final) may also
        advance the partials; returns the new hypothesis, or None."""
        return None

    def hypothesis(self, words: list[str], trusted: bool = True) -> PartialText:
        """Feed a whole-segment hypothesis to LocalAgreement; returns it split."""
        agreement = self.agreement
        agreement.update(words, trusted)
        return PartialText(join_words(agreement.confirmed), join_words(agreement.unstable))

    # -- early commits ---------------------------------------------------------------------------
    def could_commit(self, rules: CommitRules) -> bool:
        """Whether the newest hypothesis could be committed at a pause now: it ends a sentence
        somewhere, or holds enough words."""
        words = self.agreement.hypothesis
        if rules.max_words and len(words) >= rules.max_words:
            return True
        return rules.sentence_end and any(ends_sentence(w) for w in words)

    def hold(self) -> None:
        """Confirm no more words until a proposed commit is decided (or withdrawn)."""
        if self.agreement.limit is None:
            self.agreement.limit = len(self.agreement.confirmed)

    def propose_commit(self, result: TranscriptionResult) -> bool:
        """A decode of the segment up to a pause: hold confirmations to its words until a
        later hypothesis says whether it ends there (`commit_decision`). False if it is
        empty."""
        words, _ = trim_loop(text_words(usable_segments(result)))
        if not words:
            self.withdraw_commit()
            return False
        self._candidate = words
        self.agreement.limit = max(len(words), len(self.agreement.confirmed))
        return True

    def commit_decision(self, rules: CommitRules) -> bool | None:
        """Judge the proposed commit by the newest hypothesis (see `agreement.commit_point`):
        True commits it, False withdraws it, None waits for a hypothesis that goes beyond it."""
        if self._candidate is None:
            return False
        if len(self.agreement.confirmed) > len(self._candidate):
            self.withdraw_commit()  # stable words already go past the pause
            return False
        decision = commit_point(
            self._candidate,
            self.agreement.hypothesis,
            sentence_end=rules.sentence_end,
            max_words=rules.max_words,
        )
        if decision is False:
            self.withdraw_commit()
        return decision

    def withdraw_commit(self) -> None:
        self._candidate = None
        self.agreement.limit = None

    @property
    def commit_pending(self) -> bool:
        return self._candidate is not None

    # -- finals ----------------------------------------------------------------------------------
    def final_words(self, segments: list[SegmentResult]) -> tuple[list[str], list[WordTiming]]:
        """The words of a final decode and their timings (empty if it has none): punctuation
        kept on words, a repetition loop cut."""
        timings = timed_words(segments)
        words = [w.word for w in timings] if timings else text_words(segments)
        words, looped = trim_loop(words)
        self.looped |= looped
        return words, timings[: len(words)]

    @abc.abstractmethod
    async def decode_final(
        self,
        audio: Audio,
        options: TranscribeOptions,
        *,
        closing: bool = False,
        silence_after: bool = False,
    ) -> TranscriptionResult:
        """One decode of the segment's audio as its final (may raise; the caller retries).
        `closing`: the segment is closed and this is its final (not a decode ahead of it);
        `silence_after`: it ended in a pause, so audio after its end is silence."""

    def finish(self, result: TranscriptionResult, offset_ms: int) -> FinalTranscript | None:
        """The final of the segment from its decode, after its confirmed words (so partials'
        stable text is its prefix); None when it held no speech."""
        segments = usable_segments(result)
        words, timings = self.final_words(segments)
        stitched, index = self.agreement.stitch(words)
        if not stitched:
            return None
        confirmed = len(stitched) - (len(words) - index)
        duration = result.duration
        aligned = _retime(stitched, confirmed, timings, index, duration) if timings else ()
        if aligned:
            start, end = aligned[0].start, aligned[-1].end
        elif segments:
            start, end = segments[0].start, segments[-1].end
        else:
            start, end = 0.0, duration
        offset = offset_ms / 1000
        return FinalTranscript(
            text=join_words(stitched),
            start_ms=offset_ms + round(start * 1000),
            end_ms=offset_ms + round(end * 1000),
            language=result.language,
            confidence=confidence(segments),
            words=tuple(
                WordTiming(w.word, round(w.start + offset, 3), round(w.end + offset, 3))
                for w in aligned
            ),
            audio_ms=round(duration * 1000),
        )


def _retime(
    stitched: list[str],
    confirmed: int,
    timings: list[WordTiming],
    index: int,
    duration: float,
) -> tuple[WordTiming, ...]:
    """Timings for the stitched words: the final decode's own for its words; when the
    confirmed prefix differs from the decode's, the decode's span for it, split evenly."""
    head: list[WordTiming] = []
    if confirmed == index:
        head = [WordTiming(w, t.start, t.end) for w, t in zip(stitched, timings, strict=False)]
        head = head[:confirmed]
    elif confirmed:
        span_start = timings[0].start if index else 0.0
        span_end = timings[index - 1].end if index else (timings[0].start if timings else duration)
        step = max(span_end - span_start, 0.0) / confirmed
        head = [
            WordTiming(w, span_start + i * step, span_start + (i + 1) * step)
            for i, w in enumerate(stitched[:confirmed])
        ]
    tail = [WordTiming(w.word, w.start, w.end) for w in timings[index:]]
    return tuple(head + tail)
