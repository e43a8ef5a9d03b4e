"""faster-whisper behind `STTBackend`, split so windows of many requests decode in one batch.

`prepare` (per request: VAD, windows, features) -> `decode_batch` (any windows, any requests,
one encoder pass and batched `generate` calls) -> `assemble` (per request). Between them,
`engines.whisper.context.decode_windows` gives each window the text before it. The Serve
deployment feeds `decode_batch` from a cross-request queue; `transcribe_file` chains the
stages in-process.

A window's result depends only on the window (its audio, options and previous text), never on
the other windows of its batch: every per-batch step works per window (see
`docs/ARCHITECTURE.md`, "Batch invariance").
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engines.base import (
    SAMPLE_RATE,
    Audio,
    Health,
    HealthState,
    SegmentResult,
    STTBackend,
    TranscribeOptions,
    TranscriptionResult,
    WordTiming,
)
from engines.manifest import ModelManifest
from engines.whisper.context import PromptHistory, decode_windows
from engines.whisper.jobs import WindowJob, WindowOutput
from engines.whisper.recovery import (
    entries_to_drop,
    normalize_word,
    repeated_words,
    uncovered_tail,
)
from engines.whisper.segments import (
    TimedTokens,
    compression_ratio,
    is_silence,
    needs_fallback,
    split_timestamped,
)
from engines.whisper.windows import Span, covering_windows, speech_windows

WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
FRAMES_PER_SECOND = 100
N_FRAMES = WINDOW_SECONDS * FRAMES_PER_SECOND
BEST_OF = 5
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"  # noqa: RUF001


@dataclass
class _Attempt:
    tokens: list[int]
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float


@dataclass
class _Decoding:
    """Per-window decode state while the batch moves through the temperature ladder."""

    job: WindowJob
    language: str
    language_probability: float
    tokenizer: Any
    prompt: list[int]
    attempts: list[_Attempt] = field(default_factory=list)
    chosen: _Attempt | None = None


class WhisperBackend(STTBackend):
    def __init__(self, manifest: ModelManifest, **overrides: Any) -> None:
        super().__init__(manifest)
        config = {**manifest.engine_config, **{k: v for k, v in overrides.items() if v}}
        self.device = str(config.get("device", "cpu"))
        self.compute_type = str(config.get("compute_type", "int8"))
        self.cpu_threads = int(config.get("cpu_threads", 0))
        self.beam_size = int(config.get("beam_size", 5))
        self.max_batch_size = int(config.get("max_batch_size", 8))
        self._model: Any = None
        self._tokenizers: dict[tuple[str, str], Any] = {}
        self._suppress_tokens: list[int] = []
        self._health = Health(HealthState.LOADING)

    # -- lifecycle ---------------------------------------------------------------------------
    def load(self) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.transcribe import get_suppressed_tokens

        try:
            self._model = WhisperModel(
                str(self.manifest.model_path()),
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
            )
        except Exception as exc:
            self._health = Health(HealthState.FAILED, f"load failed: {exc}")
            raise
        self._suppress_tokens = list(
            get_suppressed_tokens(self._tokenizer("transcribe", "en"), [-1])
        )
        self._health = Health(HealthState.READY)

    def unload(self) -> None:
        self._model = None
        self._tokenizers.clear()
        self._health = Health(HealthState.LOADING, "unloaded")

    def health(self) -> Health:
        return self._health

    @property
    def is_multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    # -- in-process use ----------------------------------------------------------------------
    async def transcribe_file(
        self, audio: Audio, options: TranscribeOptions
    ) -> TranscriptionResult:
        jobs = await asyncio.to_thread(self.prepare, audio, options)
        outputs: list[WindowOutput] = []
        if options.condition_on_previous_text:
            outputs = [
                output
                async for output in decode_windows(
                    jobs,
                    self._decode_alone,
                    self.prompt_history(options),
                    condition_on_previous_text=True,
                )
            ]
        else:
            first = self.prompt_history(options).previous()
            jobs = [replace(job, previous=first) for job in jobs]
            for i in range(0, len(jobs), self.max_batch_size):
                batch = jobs[i : i + self.max_batch_size]
                outputs += await asyncio.to_thread(self.decode_batch, batch)
        return self.assemble(len(audio) / SAMPLE_RATE, options, outputs)

    async def _decode_alone(self, job: WindowJob) -> WindowOutput:
        outputs = await asyncio.to_thread(self.decode_batch, [job])
        return outputs[0]

    def prompt_history(self, options: TranscribeOptions) -> PromptHistory:
        """The context before a request's first window: its initial prompt."""
        initial: list[int] = []
        if options.prompt and options.prompt.strip():
            initial = self._tokenizer("transcribe", "en").encode(" " + options.prompt.strip())
        return PromptHistory.start(initial)

    # -- stage 1: per request ----------------------------------------------------------------
    def prepare(self, audio: Audio, options: TranscribeOptions) -> list[WindowJob]:
        """VAD-aware windows of the request and their log-mel features."""
        from faster_whisper.audio import pad_or_trim

        windows = self.plan_windows(audio, options.vad_filter)
        extractor = self._model.feature_extractor
        jobs = []
        for window in windows:
            chunk = audio[window.start : window.end]
            features = pad_or_trim(extractor(chunk)[..., :-1], N_FRAMES)
            jobs.append(
                WindowJob(
                    offset=window.start / SAMPLE_RATE,
                    duration=window.length / SAMPLE_RATE,
                    features=np.ascontiguousarray(features, dtype=np.float32),
                    options=options,
                )
            )
        return jobs

    def plan_windows(self, audio: Audio, vad_filter: bool) -> list[Span]:
        total = len(audio)
        if not vad_filter and total <= WINDOW_SAMPLES:
            return [Span(0, total)] if total else []
        speech = self._speech_spans(audio)
        if vad_filter:
            return speech_windows(speech, WINDOW_SAMPLES, SAMPLE_RATE // 5, total)
        return covering_windows(total, speech, WINDOW_SAMPLES)

    @staticmethod
    def _speech_spans(audio: Audio) -> list[Span]:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        vad = VadOptions(max_speech_duration_s=WINDOW_SECONDS - 1, min_silence_duration_ms=300)
        return [Span(int(t["start"]), int(t["end"])) for t in get_speech_timestamps(audio, vad)]

    # -- stage 2: any windows of any requests ------------------------------------------------
    def decode_batch(
        self, jobs: list[WindowJob], *, recover_tails: bool = True
    ) -> list[WindowOutput]:
        """Decode windows from any mix of requests: one encoder pass, batched generation.

        Whisper sometimes stops at the last complete sentence and leaves speech at the end of
        a window untranscribed (sequential decoding would seek there). Such tails are decoded
        once more, together, in a second pass, with the window's text so far as context; what
        they repeat of it is dropped. Word timings come last, per window, over all its text.
        """
        if not jobs:
            return []
        encoded, decodings, segments = self._transcribe(jobs)
        if recover_tails:
            self._recover_tails(decodings, segments)
        self._add_words(encoded, decodings, segments)
        return [
            WindowOutput(d.language, d.language_probability, segs, len(jobs))
            for d, segs in zip(decodings, segments, strict=True)
        ]

    def _transcribe(
        self, jobs: list[WindowJob]
    ) -> tuple[Any, list[_Decoding], list[list[SegmentResult]]]:
        encoded = self._model.encode(np.stack([job.features for job in jobs]))
        languages = self._languages(jobs, encoded)
        decodings = []
        for job, (language, probability) in zip(jobs, languages, strict=True):
            tokenizer = self._tokenizer(job.options.task, language)
            decodings.append(
                _Decoding(job, language, probability, tokenizer, self._prompt(tokenizer, job))
            )
        self._generate_with_fallback(encoded, decodings)
        return encoded, decodings, [self._segments(d) for d in decodings]

    def _recover_tails(
        self, decodings: list[_Decoding], segments: list[list[SegmentResult]]
    ) -> None:
        from faster_whisper.audio import pad_or_trim

        tails: list[tuple[int, WindowJob]] = []
        for i, d in enumerate(decodings):
            job = d.job
            if not segments[i] or job.options.draft:
                continue
            start = uncovered_tail(segments[i][-1].end - job.offset, job.duration)
            if start is None:
                continue
            first = round(start * FRAMES_PER_SECOND)
            last = round(job.duration * FRAMES_PER_SECOND)
            features = pad_or_trim(job.features[:, first:last], N_FRAMES)
            previous = PromptHistory(job.previous, initial_only=False).after(segments[i])
            tail = WindowJob(
                job.offset + start,
                job.duration - start,
                np.ascontiguousarray(features, dtype=np.float32),
                replace(job.options, language=d.language),
                previous.previous(),
            )
            tails.append((i, tail))
        if not tails:
            return
        _, tail_decodings, tail_segments = self._transcribe([tail for _, tail in tails])
        for (i, _), tail_decoding, recovered in zip(
            tails, tail_decodings, tail_segments, strict=True
        ):
            seek = segments[i][0].seek
            for segment in self._without_repeats(segments[i], recovered, tail_decoding.tokenizer):
                segment.seek = seek
                segments[i].append(segment)

    @staticmethod
    def _without_repeats(
        existing: list[SegmentResult], recovered: list[SegmentResult], tokenizer: Any
    ) -> list[SegmentResult]:
        """The recovered segments less the words they repeat of `existing` (in place)."""
        have = [[normalize_word(w) for w in _words(s.tokens, tokenizer)[0]] for s in existing]
        kept = []
        for segment in recovered:
            words, word_tokens = _words(segment.tokens, tokenizer)
            normalized = [normalize_word(w) for w in words]
            drop = entries_to_drop(normalized, repeated_words(have, normalized))
            if drop == len(words):
                continue
            if drop:
                stamps = [t for t in segment.tokens if t >= tokenizer.timestamp_begin]
                text_tokens = [t for tokens in word_tokens[drop:] for t in tokens]
                segment.tokens = stamps[:1] + text_tokens + stamps[1:]
                segment.text = tokenizer.decode(text_tokens)
                segment.compression_ratio = compression_ratio(segment.text)
            have.append(normalized[drop:])
            kept.append(segment)
        return kept

    def _languages(self, jobs: list[WindowJob], encoded: Any) -> list[tuple[str, float]]:
        if not self.is_multilingual:
            return [("en", 1.0)] * len(jobs)
        detected: list[tuple[str, float]] = [("en", 0.0)] * len(jobs)
        if any(job.options.language is None for job in jobs):
            for i, ranked in enumerate(self._model.model.detect_language(encoded)):
                token, probability = ranked[0]
                detected[i] = (token[2:-2], float(probability))
        return [
            (job.options.language, 1.0) if job.options.language else detected[i]
            for i, job in enumerate(jobs)
        ]

    def _tokenizer(self, task: str, language: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        key = (task, language)
        if key not in self._tokenizers:
            multilingual = self.is_multilingual
            self._tokenizers[key] = Tokenizer(
                self._model.hf_tokenizer,
                multilingual,
                task=task if multilingual else "transcribe",
                language=language if multilingual else "en",
            )
        return self._tokenizers[key]

    def _prompt(self, tokenizer: Any, job: WindowJob) -> list[int]:
        opts = job.options
        hot_words = ", ".join(opts.hot_words) if opts.hot_words else None
        prompt: list[int] = self._model.get_prompt(
            tokenizer, list(job.previous), without_timestamps=False, hotwords=hot_words
        )
        return prompt

    def _generate_with_fallback(self, encoded: Any, decodings: list[_Decoding]) -> None:
        """Temperature fallback per window: a window that loops or scores badly is decoded
        again at the next temperature of its ladder, in a batch with the others that failed."""
        total = len(decodings)
        step = 0
        pending = list(range(total))
        while pending:
            groups: dict[tuple[float, int, int], list[int]] = defaultdict(list)
            for i in pending:
                ladder = decodings[i].job.options.temperatures or (0.0,)
                temperature = ladder[min(step, len(ladder) - 1)]
                sot_index = decodings[i].prompt.index(decodings[i].tokenizer.sot)
                beam = decodings[i].job.options.beam_size or self.beam_size
                groups[(temperature, sot_index, beam)].append(i)
            for (temperature, _, beam), indices in groups.items():
                self._generate(encoded, total, decodings, indices, temperature, beam)
            still = []
            for i in pending:
                d = decodings[i]
                last = d.attempts[-1]
                ladder = d.job.options.temperatures or (0.0,)
                done = is_silence(last.no_speech_prob, last.avg_logprob) or not needs_fallback(
                    last.compression_ratio, last.avg_logprob
                )
                if done or step + 1 >= len(ladder):
                    d.chosen = last if done else _best_attempt(d.attempts)
                else:
                    still.append(i)
            pending = still
            step += 1

    def _generate(
        self,
        encoded: Any,
        total: int,
        decodings: list[_Decoding],
        indices: list[int],
        temperature: float,
        beam_size: int,
    ) -> None:
        greedy = temperature == 0
        results = self._model.model.generate(
            _subset(encoded, indices, total),
            [decodings[i].prompt for i in indices],
            beam_size=beam_size if greedy else 1,
            num_hypotheses=1 if greedy else BEST_OF,
            sampling_topk=1 if greedy else 0,
            sampling_temperature=1.0 if greedy else temperature,
            max_length=self._model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress_tokens,
        )
        for i, result in zip(indices, results, strict=True):
            tokens = list(result.sequences_ids[0])
            score = float(result.scores[0])
            avg_logprob = score * len(tokens) / (len(tokens) + 1)
            tokenizer = decodings[i].tokenizer
            text = tokenizer.decode([t for t in tokens if t < tokenizer.eot])
            decodings[i].attempts.append(
                _Attempt(
                    tokens=tokens,
                    text=text,
                    avg_logprob=avg_logprob,
                    no_speech_prob=float(result.no_speech_prob),
                    compression_ratio=compression_ratio(text),
                    temperature=temperature,
                )
            )

    def _segments(self, d: _Decoding) -> list[SegmentResult]:
        chosen = d.chosen
        assert chosen is not None
        if is_silence(chosen.no_speech_prob, chosen.avg_logprob):
            return []
        tok = d.tokenizer
        pieces = split_timestamped(chosen.tokens, tok.timestamp_begin, tok.eot, d.job.duration)
        seek = round(d.job.offset * FRAMES_PER_SECOND)
        texts = [tok.decode(p.text_tokens) for p in pieces]
        return [
            SegmentResult(
                id=0,
                start=round(d.job.offset + p.start, 3),
                end=round(d.job.offset + p.end, 3),
                text=text,
                tokens=p.tokens,
                seek=seek,
                temperature=chosen.temperature,
                avg_logprob=chosen.avg_logprob,
                compression_ratio=compression_ratio(text),
                no_speech_prob=chosen.no_speech_prob,
            )
            for p, text in zip(pieces, texts, strict=True)
            if text.strip()
        ]

    def _add_words(
        self, encoded: Any, decodings: list[_Decoding], segments: list[list[SegmentResult]]
    ) -> None:
        """Word timings by cross-attention alignment, one window at a time.

        faster-whisper's `add_word_timestamps` carries the last word's end from one window of
        its list to the next (its pause heuristics use it); aligning a batch in one call would
        let one request's timings move another's words, so each window is aligned alone, its
        pause measured from its own start.
        """
        for i, d in enumerate(decodings):
            if not (d.job.options.word_timestamps and segments[i]):
                continue
            subsegments: list[dict[str, Any]] = [
                {"tokens": s.tokens, "start": s.start, "end": s.end, "seek": s.seek}
                for s in segments[i]
            ]
            num_frames = min(N_FRAMES, math.ceil(d.job.duration * FRAMES_PER_SECOND))
            self._model.add_word_timestamps(
                [subsegments],
                d.tokenizer,
                _subset(encoded, [i], len(decodings)),
                [num_frames],
                PREPEND_PUNCTUATIONS,
                APPEND_PUNCTUATIONS,
                d.job.offset,
            )
            for segment, sub in zip(segments[i], subsegments, strict=True):
                segment.start, segment.end = round(sub["start"], 3), round(sub["end"], 3)
                segment.words = [
                    WordTiming(
                        word=w["word"],
                        start=round(float(w["start"]), 3),
                        end=round(float(w["end"]), 3),
                        probability=round(float(w["probability"]), 4),
                    )
                    for w in sub.get("words", [])
                ]

    # -- stage 3: per request ----------------------------------------------------------------
    def assemble(
        self, duration: float, options: TranscribeOptions, outputs: list[WindowOutput]
    ) -> TranscriptionResult:
        segments = [s for out in outputs for s in out.segments]
        segments.sort(key=lambda s: (s.start, s.end))
        for index, segment in enumerate(segments):
            segment.id = index
        language, probability = _request_language(options, outputs, self._default_language())
        return TranscriptionResult(
            text="".join(s.text for s in segments).strip(),
            language=language,
            duration=round(duration, 3),
            segments=segments,
            task=options.task,
            language_probability=probability,
            batch_sizes=[out.batch_size for out in outputs],
        )

    def _default_language(self) -> str:
        langs = self.manifest.capabilities.languages
        return langs[0] if len(langs) == 1 else "en"


def _best_attempt(attempts: list[_Attempt]) -> _Attempt:
    """All temperatures failed: prefer a non-looping decode, then the most likely one."""
    from engines.whisper.segments import COMPRESSION_RATIO_THRESHOLD

    fine = [a for a in attempts if a.compression_ratio <= COMPRESSION_RATIO_THRESHOLD]
    return max(fine or attempts, key=lambda a: a.avg_logprob)


def _request_language(
    options: TranscribeOptions, outputs: list[WindowOutput], default: str
) -> tuple[str, float]:
    """The language of most speech (by segment duration) across the request's windows."""
    if options.language:
        return options.language, 1.0
    weight: dict[str, float] = defaultdict(float)
    probability: dict[str, float] = {}
    for out in outputs:
        spoken = sum(s.end - s.start for s in out.segments)
        weight[out.language] += spoken
        probability[out.language] = max(
            probability.get(out.language, 0.0), out.language_probability
        )
    if not weight:
        return default, 0.0
    language = max(weight, key=lambda k: weight[k])
    return language, probability[language]


def _words(tokens: list[int], tokenizer: Any) -> tuple[list[str], list[list[int]]]:
    """A segment's words (punctuation marks are words of their own) and their tokens."""
    text = [t for t in tokens if t < tokenizer.eot]
    if not text:
        return [], []
    words, word_tokens = tokenizer.split_to_word_tokens(text)
    return list(words), [list(w) for w in word_tokens]


def _subset(encoded: Any, indices: list[int], total: int) -> Any:
    """Rows of an encoder output; the whole thing when all rows are asked for in order."""
    if indices == list(range(total)):
        return encoded
    import ctranslate2

    host = encoded if encoded.device == "cpu" else encoded.to_device(ctranslate2.Device.cpu)
    rows = np.ascontiguousarray(np.asarray(host)[indices])
    return ctranslate2.StorageView.from_array(rows)


__all__ = ["TimedTokens", "WhisperBackend", "WindowJob", "WindowOutput"]
