"""`WenetBackend`: one shared WeNet model per replica, any number of concurrent streams.

Streams through the `NativeStreamingBackend` contract: `open_stream` / `accept` / `finish` /
`close_stream`, synchronous, one call per audio chunk, for a Serve deployment that receives each
chunk of a session in a separate handle call and keeps the session's decoder state between
calls (sticky routing by session id); `transcribe_stream` is the in-process generator over them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import (
    SAMPLE_RATE,
    Audio,
    EngineStream,
    Health,
    HealthState,
    NativeStreamingBackend,
    StreamSegment,
    TranscribeOptions,
    TranscriptionResult,
)
from engines.manifest import ModelManifest
from engines.text import join_words
from engines.wenet.config import EndpointConfig, WenetConfig, parse_config
from engines.wenet.decoder import DecoderStats, DecodeSettings, StreamingDecoder, Update
from engines.wenet.features import NUM_MEL_BINS
from engines.wenet.hot_words import ContextGraphCache
from engines.wenet.model import AsrModel, EncoderState
from engines.wenet.results import file_segments, stream_segment
from engines.wenet.units import UnitTable

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class WenetStream(EngineStream):
    """One streaming session's decoder state on this replica."""

    options: TranscribeOptions
    language: str | None
    decoder: StreamingDecoder

    @property
    def stats(self) -> DecoderStats:
        """Chunks decoded and time spent (encoder, search, last chunk) for metrics."""
        return self.decoder.stats

    @property
    def next_segment_id(self) -> int:
        return self.decoder.segment_id

    @property
    def audio_seconds(self) -> float:
        """Audio decoded so far (to resume elsewhere from the right place)."""
        return self.decoder.time_offset + self.decoder.audio_seconds


class WenetBackend(NativeStreamingBackend[WenetStream]):
    def __init__(self, manifest: ModelManifest, **overrides: Any) -> None:
        """`overrides` (e.g. `num_threads` from deployment settings) win over the manifest's
        `engine_config`; falsy ones are ignored."""
        super().__init__(manifest)
        self.config: WenetConfig = parse_config(manifest.engine_config, overrides)
        self._model: AsrModel | None = None
        self._units: UnitTable | None = None
        self._graphs: ContextGraphCache | None = None
        self._health = Health(HealthState.LOADING)

    # -- lifecycle -------------------------------------------------------------------------
    def model_dir(self) -> Path:
        path = Path(self.config.model_path).expanduser()
        if not path.is_absolute() and self.manifest.directory is not None:
            path = self.manifest.directory / path
        return path

    def load(self) -> None:
        try:
            self._load()
        except Exception as exc:
            self._health = Health(HealthState.FAILED, f"load failed: {exc}")
            raise
        self._health = Health(HealthState.READY)

    def _load(self) -> None:
        cfg = self.config
        directory = self.model_dir()
        for path in [directory / cfg.units_file, *self._model_files(directory)]:
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found")
        units = UnitTable.load(directory / cfg.units_file)
        model: AsrModel
        if cfg.model_format == "onnx":
            from engines.wenet.onnx_model import OnnxModel

            model = OnnxModel(
                directory, len(units), num_threads=cfg.num_threads, quantized=cfg.quantized
            )
        else:
            from engines.wenet.torchscript import TorchScriptModel, configure_torch

            configure_torch(cfg.num_threads, cfg.num_interop_threads, cfg.jit_optimize)
            name = cfg.quantized_model_file if cfg.quantized else cfg.model_file
            model = TorchScriptModel(directory / name, len(units))
        check_vocabulary(model, len(units))
        self._units = units
        self._model = model
        self._graphs = ContextGraphCache(
            units,
            context_score=cfg.context_score,
            incremental_score=cfg.incremental_context_score,
            max_contexts=cfg.max_contexts,
            max_context_length=cfg.max_context_length,
            size=cfg.context_cache_size,
        )
        info = model.info
        logger.info(
            "wenet model %s: %d units, subsampling %d, right context %d, decoder %s",
            self.manifest.name,
            len(units),
            info.subsampling_rate,
            info.right_context,
            "bidirectional" if info.bidirectional_decoder else "left-to-right",
        )

    def _model_files(self, directory: Path) -> list[Path]:
        cfg = self.config
        if cfg.model_format == "onnx":
            from engines.wenet.onnx_model import CTC, ENCODER, onnx_file

            return [onnx_file(directory, part, cfg.quantized) for part in (ENCODER, CTC)]
        return [directory / (cfg.quantized_model_file if cfg.quantized else cfg.model_file)]

    def unload(self) -> None:
        self.close_all_streams()
        if self._model is not None:
            self._model.close()
        self._model = None
        self._health = Health(HealthState.LOADING, "unloaded")

    def health(self) -> Health:
        return self._health

    @property
    def units(self) -> UnitTable:
        if self._units is None:
            raise RuntimeError("model not loaded")
        return self._units

    def _loaded(self) -> tuple[AsrModel, UnitTable, ContextGraphCache]:
        if self._model is None or self._units is None or self._graphs is None:
            raise RuntimeError(f"model {self.manifest.name} is not loaded")
        return self._model, self._units, self._graphs

    # -- settings ---------------------------------------------------------------------------
    def _settings(
        self, chunk_size: int, options: TranscribeOptions, *, partials: bool = True
    ) -> DecodeSettings:
        cfg = self.config
        model, units, _ = self._loaded()
        beam = options.beam_size or cfg.second_beam_size
        info = model.info
        return DecodeSettings(
            chunk_size=info.fixed_chunk_size or chunk_size,
            num_left_chunks=(
                cfg.num_left_chunks
                if info.fixed_num_left_chunks is None
                else info.fixed_num_left_chunks
            ),
            first_beam_size=max(cfg.first_beam_size, beam),
            second_beam_size=beam,
            blank=cfg.blank_id if cfg.blank_id is not None else units.blank_id(),
            endpoint=cfg.endpoint,
            rescoring_weight=cfg.rescoring_weight if model.info.has_decoder else 0.0,
            ctc_weight=cfg.ctc_weight,
            reverse_weight=cfg.reverse_weight,
            timestamp_gap_ms=cfg.timestamp_gap_ms,
            lowercase=cfg.lowercase,
            emit_partials=partials,
            emit_empty_partials=cfg.emit_empty_partials,
        )

    def _decoder(
        self,
        chunk_size: int,
        options: TranscribeOptions,
        *,
        first_segment_id: int = 0,
        time_offset: float = 0.0,
        partials: bool = True,
    ) -> StreamingDecoder:
        model, units, graphs = self._loaded()
        return StreamingDecoder(
            model,
            units,
            self._settings(chunk_size, options, partials=partials),
            graphs.get(options.hot_words),
            first_segment_id=first_segment_id,
            time_offset=time_offset,
        )

    def _language(self, options: TranscribeOptions) -> str:
        langs = self.manifest.capabilities.languages
        return options.language or self.config.language or (langs[0] if langs else "")

    # -- files ------------------------------------------------------------------------------
    async def transcribe_file(
        self, audio: Audio, options: TranscribeOptions
    ) -> TranscriptionResult:
        return await asyncio.to_thread(self.transcribe_file_sync, audio, options)

    def file_chunk_size(self, duration_s: float) -> int:
        """Full attention over the whole file unless it is long (then chunks + endpoints)."""
        cfg = self.config
        if cfg.file_decoding_chunk_size > 0 or duration_s > cfg.max_full_context_s:
            return (
                cfg.file_decoding_chunk_size
                if cfg.file_decoding_chunk_size > 0
                else (cfg.long_file_chunk_size)
            )
        return -1

    def transcribe_file_sync(self, audio: Audio, options: TranscribeOptions) -> TranscriptionResult:
        duration = len(audio) / SAMPLE_RATE
        decoder = self._decoder(self.file_chunk_size(duration), options, partials=False)
        finals = decoder.accept(np.asarray(audio, dtype=np.float32))
        finals += decoder.finish()
        min_pause, max_length = pause_rules(self.config.endpoint, self.config.timestamp_gap_ms)
        segments = file_segments(
            finals,
            min_pause_s=min_pause,
            max_length_s=max_length,
            with_words=options.word_timestamps,
        )
        return TranscriptionResult(
            text=join_words([s.text for s in segments if s.text]),
            language=self._language(options),
            duration=duration,
            segments=segments,
            task="transcribe",
            batch_sizes=[1] * decoder.stats.encoder_calls,
        )

    # -- streams (the session table is `NativeStreamingBackend`'s) ------------------------------
    def new_stream(
        self,
        session_id: str,
        options: TranscribeOptions,
        *,
        first_segment_id: int = 0,
        time_offset: float = 0.0,
    ) -> WenetStream:
        decoder = self._decoder(
            self.config.decoding_chunk_size,
            options,
            first_segment_id=first_segment_id,
            time_offset=time_offset,
        )
        return WenetStream(
            session_id=session_id,
            options=options,
            language=self._language(options),
            decoder=decoder,
        )

    def decode(self, stream: WenetStream, audio: Audio) -> list[StreamSegment]:
        """A partial per processed encoder chunk and a final per endpoint."""
        updates = stream.decoder.accept(np.asarray(audio, dtype=np.float32))
        return self._segments(stream, updates)

    def flush(self, stream: WenetStream) -> list[StreamSegment]:
        return self._segments(stream, stream.decoder.finish())

    def samples_needed(self, stream: WenetStream) -> int | None:
        return stream.decoder.samples_needed()

    @staticmethod
    def _segments(stream: WenetStream, updates: Sequence[Update]) -> list[StreamSegment]:
        return [stream_segment(u, stream.language) for u in updates]


def check_vocabulary(model: AsrModel, units: int) -> None:
    """One chunk of silence through a fresh state: warms the model up (TorchScript compiles
    on first call) and proves units.txt matches the CTC output."""
    info = model.info
    frames = (16 - 1) * info.subsampling_rate + info.right_context + 1
    silence = np.full((frames, NUM_MEL_BINS), -15.9, dtype=np.float32)  # log(eps): zeros
    logp = model.forward_chunk(EncoderState(), silence, -1, keep_output=False)
    if logp.shape[1] != units:
        raise ValueError(f"units.txt has {units} units but the model outputs {logp.shape[1]}")


def pause_rules(endpoint: EndpointConfig, gap_ms: int) -> tuple[float, float]:
    """(min pause between words, max segment length) in seconds for splitting a file's
    transcript the way the streaming endpointer would cut it."""
    silences = [r.min_trailing_silence_ms for r in endpoint.rules if r.must_decode_something]
    lengths = [r.min_utterance_length_ms for r in endpoint.rules if r.min_utterance_length_ms]
    silence_s = (min(silences) if silences else 1000) / 1000
    min_pause = max(0.1, silence_s - 2 * gap_ms / 1000)
    max_length = (min(lengths) if lengths else 30000) / 1000
    return min_pause, max_length
