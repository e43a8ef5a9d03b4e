"""DTMF decoding: Goertzel filters at the eight keypad frequencies, frame by frame.

Each 20 ms frame is classified as one key (its strongest row and column tones carry most of
the frame's energy, each clearly above the other tones of its group) or none. A key held for
at least `min_tone_ms` is one key press; a pause of `segment_gap_ms` after key presses ends a
segment (a final). Whole files and realtime sessions run the same detector.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from engines.base import (
    SAMPLE_RATE,
    Audio,
    EngineStream,
    Health,
    HealthState,
    NativeStreamingBackend,
    SegmentResult,
    StreamSegment,
    TranscribeOptions,
    TranscriptionResult,
    WordTiming,
)
from engines.manifest import ModelManifest

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
FRAME = SAMPLE_RATE // 50
"""20 ms: shorter than the 40 ms a key press lasts at least (ITU-T Q.24)."""
UNDETERMINED = "und"
"""DTMF has no language."""


class DtmfConfig(BaseModel):
    """`engine_config` of a DTMF model."""

    model_config = ConfigDict(extra="forbid")

    min_tone_ms: int = Field(default=40, ge=20)
    segment_gap_ms: int = Field(default=600, ge=100)
    min_level_dbfs: float = Field(default=-45.0, le=0)
    """Quieter frames are silence."""
    min_tone_share: float = Field(default=0.8, gt=0, le=1)
    """Row plus column tone power over the frame's power (speech spreads its power)."""
    min_group_ratio: float = Field(default=4.0, ge=1)
    """The chosen row (column) tone over the next strongest row (column) tone."""
    max_twist_db: float = Field(default=8.0, gt=0)
    """How much louder one of the two tones may be than the other."""


def _coefficients(frequencies: tuple[float, ...]) -> npt.NDArray[np.float64]:
    return 2.0 * np.cos(2.0 * np.pi * np.asarray(frequencies) / SAMPLE_RATE)


ROW_COEFFICIENTS = _coefficients(ROWS)
COLUMN_COEFFICIENTS = _coefficients(COLUMNS)


def goertzel_power(
    frames: npt.NDArray[np.float64], coefficients: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Power at each filter's frequency in each frame: `(frames, samples)` ->
    `(frames, filters)`. The Goertzel recursion, run for all frames and filters at once."""
    shape = (frames.shape[0], coefficients.shape[0])
    s1, s2 = np.zeros(shape), np.zeros(shape)
    for column in frames.T:
        s1, s2 = column[:, None] + coefficients * s1 - s2, s1
    power: npt.NDArray[np.float64] = s1 * s1 + s2 * s2 - coefficients * s1 * s2
    return power


def classify(frames: npt.NDArray[np.float64], config: DtmfConfig) -> list[str | None]:
    """The key sounding in each frame (`(frames, FRAME)` samples), or None."""
    energy = np.einsum("ij,ij->i", frames, frames)
    # Normalised so that a full-scale sine at a filter's frequency gives 1.
    scale = np.maximum(frames.shape[1] * energy / 2, 1e-20)[:, None]
    rows = goertzel_power(frames, ROW_COEFFICIENTS) / scale
    columns = goertzel_power(frames, COLUMN_COEFFICIENTS) / scale
    level = 10 * np.log10(np.maximum(2 * energy / frames.shape[1], 1e-20))
    keys: list[str | None] = []
    for i in range(frames.shape[0]):
        keys.append(_key(rows[i], columns[i], float(level[i]), config))
    return keys


Powers = npt.NDArray[np.float64]


def _key(rows: Powers, columns: Powers, level: float, config: DtmfConfig) -> str | None:
    if level < config.min_level_dbfs:
        return None
    row, column = int(np.argmax(rows)), int(np.argmax(columns))
    if rows[row] + columns[column] < config.min_tone_share:
        return None
    twist = 10 * np.log10(max(rows[row], 1e-20) / max(columns[column], 1e-20))
    if abs(twist) > config.max_twist_db:
        return None
    for powers, best in ((rows, row), (columns, column)):
        if powers[best] < config.min_group_ratio * float(np.delete(powers, best).max()):
            return None
    return KEYS[row][column]


@dataclass
class KeyPress:
    key: str
    start: float
    end: float


@dataclass
class Detector:
    """Frames -> key presses -> segments. Times in seconds from `time_offset`."""

    config: DtmfConfig
    segment_id: int = 0
    time_offset: float = 0.0
    samples: int = 0
    pending: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    run_key: str | None = None
    run_frames: int = 0
    run_start: int = 0
    silent_frames: int = 0
    presses: list[KeyPress] = field(default_factory=list)

    @property
    def min_frames(self) -> int:
        return max(1, self.config.min_tone_ms * SAMPLE_RATE // 1000 // FRAME)

    @property
    def gap_frames(self) -> int:
        return self.config.segment_gap_ms * SAMPLE_RATE // 1000 // FRAME

    def seconds(self, sample: int) -> float:
        return round(self.time_offset + sample / SAMPLE_RATE, 3)

    def accept(self, audio: Audio) -> list[StreamSegment]:
        data = np.concatenate([self.pending, np.asarray(audio, dtype=np.float64)])
        whole = len(data) - len(data) % FRAME
        self.pending = data[whole:]
        out: list[StreamSegment] = []
        if whole:
            for key in classify(data[:whole].reshape(-1, FRAME), self.config):
                out += self._frame(key)
        return out

    def finish(self) -> list[StreamSegment]:
        out = self._end_run()
        final = self._final()
        return out + ([final] if final else [])

    def _frame(self, key: str | None) -> list[StreamSegment]:
        out: list[StreamSegment] = []
        if key != self.run_key:
            out += self._end_run()
            self.run_key, self.run_frames, self.run_start = key, 0, self.samples
        self.samples += FRAME
        self.run_frames += 1
        if key is None:
            self.silent_frames += 1
            if self.presses and self.silent_frames == self.gap_frames:
                final = self._final()
                out += [final] if final else []
        else:
            self.silent_frames = 0
            if self.run_frames == self.min_frames:
                start = self.seconds(self.run_start)
                self.presses.append(KeyPress(key, start, self.seconds(self.samples)))
                out.append(self._segment(is_final=False))
        return out

    def _end_run(self) -> list[StreamSegment]:
        if self.run_key is not None and self.run_frames >= self.min_frames:
            self.presses[-1].end = self.seconds(self.run_start + self.run_frames * FRAME)
        return []

    def _segment(self, *, is_final: bool) -> StreamSegment:
        return StreamSegment(
            segment_id=self.segment_id,
            text=" ".join(p.key for p in self.presses),
            is_final=is_final,
            start=self.presses[0].start,
            end=self.presses[-1].end,
            language=UNDETERMINED,
            words=tuple(WordTiming(p.key, p.start, p.end) for p in self.presses),
        )

    def _final(self) -> StreamSegment | None:
        if not self.presses:
            return None
        final = self._segment(is_final=True)
        self.segment_id += 1
        self.presses = []
        return final


@dataclass(kw_only=True)
class DtmfStream(EngineStream):
    detector: Detector


class DtmfBackend(NativeStreamingBackend[DtmfStream]):
    def __init__(self, manifest: ModelManifest, **overrides: Any) -> None:
        super().__init__(manifest)
        self.config = DtmfConfig.model_validate({**manifest.engine_config, **overrides})
        self._health = Health(HealthState.LOADING)

    def load(self) -> None:
        self._health = Health(HealthState.READY)

    def unload(self) -> None:
        self.close_all_streams()
        self._health = Health(HealthState.LOADING, "unloaded")

    def health(self) -> Health:
        return self._health

    # -- files -------------------------------------------------------------------------------
    async def transcribe_file(
        self, audio: Audio, options: TranscribeOptions
    ) -> TranscriptionResult:
        return await asyncio.to_thread(self.transcribe_file_sync, audio, options)

    def transcribe_file_sync(self, audio: Audio, options: TranscribeOptions) -> TranscriptionResult:
        detector = Detector(self.config)
        finals = [s for s in detector.accept(audio) + detector.finish() if s.is_final]
        segments = [
            SegmentResult(
                id=i,
                start=s.start,
                end=s.end,
                text=s.text,
                words=list(s.words) if options.word_timestamps else [],
            )
            for i, s in enumerate(finals)
        ]
        return TranscriptionResult(
            text=" ".join(s.text for s in segments),
            language=options.language or UNDETERMINED,
            duration=round(len(audio) / SAMPLE_RATE, 3),
            segments=segments,
        )

    # -- streams (Theo's NativeStreamingBackend keeps the session table) --------------------------
    def new_stream(
        self,
        session_id: str,
        options: TranscribeOptions,
        *,
        first_segment_id: int = 0,
        time_offset: float = 0.0,
    ) -> DtmfStream:
        detector = Detector(self.config, segment_id=first_segment_id, time_offset=time_offset)
        return DtmfStream(session_id=session_id, detector=detector)

    def decode(self, stream: DtmfStream, audio: Audio) -> list[StreamSegment]:
        return stream.detector.accept(audio)

    def flush(self, stream: DtmfStream) -> list[StreamSegment]:
        return stream.detector.finish()
