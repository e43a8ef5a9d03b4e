"""One stream's decoding: audio in, partial and final hypotheses out.

Per chunk: fbank frames -> encoder (with the stream's caches) -> CTC log-posteriors ->
prefix beam search -> endpoint check. At an endpoint the segment is finalised (hot-word
give-back, attention rescoring) and the encoder, search and endpointer restart cold, as in
WeNet's runtime; features and the stream clock run on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engines.wenet.alignment import TimedUnit, TimedWord, text_of, timed_units, words_of
from engines.wenet.chunking import ChunkSchedule, FeatureQueue
from engines.wenet.config import EndpointConfig
from engines.wenet.context_graph import ContextGraph
from engines.wenet.ctc_search import CtcPrefixBeamSearch, Hypothesis
from engines.wenet.endpoint import EndpointDetector
from engines.wenet.features import FRAME_SHIFT_MS, NUM_MEL_BINS, FbankExtractor
from engines.wenet.model import AsrModel, EncoderState
from engines.wenet.rescoring import rescore
from engines.wenet.units import UnitTable


@dataclass(frozen=True)
class DecodeSettings:
    chunk_size: int
    num_left_chunks: int = -1
    first_beam_size: int = 10
    second_beam_size: int = 10
    blank: int = 0
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    endpointing: bool = True
    rescoring_weight: float = 0.0
    ctc_weight: float = 0.5
    reverse_weight: float = 0.0
    timestamp_gap_ms: int = 100
    lowercase: bool = False
    emit_partials: bool = True
    """Files only need finals: skip building partials."""
    emit_empty_partials: bool = False


@dataclass(frozen=True)
class Update:
    """A hypothesis of one segment; partials of a segment are replaced by its final."""

    segment_id: int
    is_final: bool
    text: str
    start: float
    """Seconds from the start of the stream."""
    end: float
    confidence: float
    avg_logprob: float
    words: tuple[TimedWord, ...]
    units: tuple[TimedUnit, ...]


@dataclass
class DecoderStats:
    chunks: int = 0
    encoder_s: float = 0.0
    search_s: float = 0.0
    last_chunk_s: float = 0.0
    encoder_calls: int = 0


class StreamingDecoder:
    """Not thread-safe: one caller at a time (the backend's stream lock sees to that)."""

    def __init__(
        self,
        model: AsrModel,
        units: UnitTable,
        settings: DecodeSettings,
        context_graph: ContextGraph | None = None,
        *,
        first_segment_id: int = 0,
        time_offset: float = 0.0,
    ) -> None:
        info = model.info
        self.model = model
        self.units = units
        self.settings = settings
        self.schedule = ChunkSchedule(
            settings.chunk_size, info.subsampling_rate, info.right_context, settings.num_left_chunks
        )
        self.features = FbankExtractor(NUM_MEL_BINS)
        self.queue = FeatureQueue(self.schedule, NUM_MEL_BINS)
        self.encoder = EncoderState()
        self.search = CtcPrefixBeamSearch(
            blank=settings.blank,
            first_beam_size=settings.first_beam_size,
            second_beam_size=settings.second_beam_size,
            context_graph=context_graph,
        )
        self.frame_ms = info.subsampling_rate * FRAME_SHIFT_MS
        self.endpointer = EndpointDetector(
            settings.endpoint.rules,
            frame_ms=self.frame_ms,
            blank=settings.blank,
            blank_threshold=settings.endpoint.blank_threshold,
        )
        self.segment_id = first_segment_id
        self.time_offset = time_offset
        self.segment_start_frame = 0
        self.stats = DecoderStats()
        self.finished = False

    # -- public ------------------------------------------------------------------------------
    def accept(self, audio: npt.NDArray[np.float32]) -> list[Update]:
        """Feed audio; returns a partial per processed chunk and a final per endpoint."""
        if self.finished:
            raise RuntimeError("stream already finished")
        self.features.accept(audio)
        self.queue.push(self.features.pop_frames())
        return self._drain(input_finished=False)

    def samples_needed(self) -> int | None:
        """Audio the next encoder chunk still needs (None: a whole-input decode)."""
        need = self.schedule.frames_needed(self.queue.started)
        if need is None:
            return None
        missing = max(1, need - self.queue.queued)
        return self.features.samples_until(missing)

    def finish(self) -> list[Update]:
        """End of input: decode what is left and finalise the open segment."""
        if self.finished:
            return []
        self.features.finish()
        self.queue.push(self.features.pop_frames())
        updates = [u for u in self._drain(input_finished=True) if u.is_final]
        self.finished = True
        final = self._finalize()
        if final is not None:
            updates.append(final)
        return updates

    @property
    def audio_seconds(self) -> float:
        return self.queue.consumed * FRAME_SHIFT_MS / 1000

    # -- chunks ------------------------------------------------------------------------------
    def _drain(self, *, input_finished: bool) -> list[Update]:
        updates: list[Update] = []
        keep = self.settings.rescoring_weight > 0 and self.model.info.has_decoder
        while (chunk := self.queue.next_chunk(input_finished)) is not None:
            started = time.perf_counter()
            logp = self.model.forward_chunk(
                self.encoder, chunk, self.schedule.required_cache_size(), keep
            )
            encoded = time.perf_counter()
            if logp.shape[0] == 0:  # a tail too short for one output frame
                continue
            self.search.search(logp)
            self.endpointer.update(logp)
            self._count(started, encoded, time.perf_counter())
            best = self.search.best()
            at_end = input_finished and self.queue.queued == 0
            if (
                self.settings.endpointing
                and not at_end
                and self.endpointer.is_endpoint(decoded_something=bool(best.units))
            ):
                final = self._finalize()
                if final is not None:
                    updates.append(final)
                self._restart()
                continue
            if (
                self.settings.emit_partials
                and not input_finished
                and (best.units or self.settings.emit_empty_partials)
            ):
                updates.append(self._update(best, is_final=False))
        return updates

    def _count(self, started: float, encoded: float, searched: float) -> None:
        stats = self.stats
        stats.chunks += 1
        stats.encoder_calls += 1
        stats.encoder_s += encoded - started
        stats.search_s += searched - encoded
        stats.last_chunk_s = searched - started

    def _finalize(self) -> Update | None:
        """The segment's final, or None if it decoded nothing."""
        self.search.finalize()
        hyps = self.search.hypotheses()
        if not hyps or not hyps[0].units:
            return None
        s = self.settings
        ranked = rescore(
            self.model,
            self.encoder,
            hyps,
            rescoring_weight=s.rescoring_weight,
            ctc_weight=s.ctc_weight,
            reverse_weight=s.reverse_weight,
        )
        best = ranked[0]
        if not best.units:
            return None
        update = self._update(best, is_final=True)
        self.segment_id += 1
        return update

    def _restart(self) -> None:
        self.segment_start_frame = self.queue.consumed
        self.queue.restart()
        self.encoder.reset()
        self.search.reset()
        self.endpointer.reset()

    # -- results -----------------------------------------------------------------------------
    def _update(self, hyp: Hypothesis, *, is_final: bool) -> Update:
        offset_s = self.time_offset + self.segment_start_frame * FRAME_SHIFT_MS / 1000
        timed = timed_units(
            hyp.units,
            [self.units.unit(u) for u in hyp.units],
            hyp.frames,
            hyp.logps,
            frame_s=self.frame_ms / 1000,
            gap_s=self.settings.timestamp_gap_ms / 1000,
            offset_s=offset_s,
        )
        words = words_of(timed, lowercase=self.settings.lowercase)
        if words:
            start, end = words[0].start, words[-1].end
        else:
            start = offset_s
            end = offset_s + self.endpointer.length_ms / 1000
        logps = [u.logp for u in timed]
        return Update(
            segment_id=self.segment_id,
            is_final=is_final,
            text=text_of(words),
            start=start,
            end=end,
            confidence=confidence(logps),
            avg_logprob=sum(logps) / len(logps) if logps else 0.0,
            words=tuple(words),
            units=tuple(timed),
        )


def confidence(logps: list[float]) -> float:
    """Mean posterior of the emitted units on their frames; 0 for nothing emitted."""
    if not logps:
        return 0.0
    return sum(math.exp(lp) for lp in logps) / len(logps)
