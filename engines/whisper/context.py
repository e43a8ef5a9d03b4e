"""Text context across the windows of one request, as faster-whisper's
`condition_on_previous_text` gives it. Pure functions and one async driver.

Each window is decoded with the text before it (since the last reset) as the prompt's previous
text: the initial prompt, then every decoded segment's tokens. A window decoded at a
temperature above `PROMPT_RESET_TEMPERATURE` resets it (its sampled text is not trusted as
context). The previous text is at most `MAX_PREVIOUS_TOKENS` tokens, Whisper's limit.

CTranslate2 decodes a batch only when the start-of-transcript token sits at the same position in
every prompt, so windows are grouped by previous-text length. To keep those groups few without
making a window's prompt depend on what it is batched with, the decoded context is cut to the
longest *bucket* length it fills (`PREVIOUS_BUCKETS`): a function of the window's own history
only. A history that is still only the caller's initial prompt is kept whole.

The windows of a request are therefore decoded in order, one wave per window, each wave in the
cross-request batch (`decode_windows`). Without context they are all queued at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from engines.base import SegmentResult
from engines.whisper.jobs import WindowJob, WindowOutput

PROMPT_RESET_TEMPERATURE = 0.5
MAX_PREVIOUS_TOKENS = 223
"""Whisper's `max_length // 2 - 1`: the decoder's 448 positions, half for the prompt."""
PREVIOUS_BUCKETS = (223, 128, 64, 32, 16, 8)


@dataclass(frozen=True)
class PromptHistory:
    """The text a request's next window is conditioned on."""

    tokens: tuple[int, ...] = ()
    initial_only: bool = True
    """The tokens are the caller's initial prompt only: nothing decoded, no reset yet."""

    @classmethod
    def start(cls, initial_prompt: Sequence[int]) -> PromptHistory:
        return cls(tuple(initial_prompt)[-MAX_PREVIOUS_TOKENS:], True)

    def previous(self) -> tuple[int, ...]:
        """The previous-text tokens of the next window's prompt (bucketed, see module doc)."""
        if self.initial_only:
            return self.tokens
        return bucketed(self.tokens)

    def after(self, segments: Sequence[SegmentResult]) -> PromptHistory:
        """The history once these segments (in time order) are decoded."""
        tokens = list(self.tokens)
        initial = self.initial_only
        for segment in segments:
            tokens += segment.tokens
            initial = False
            if segment.temperature > PROMPT_RESET_TEMPERATURE:
                tokens, initial = [], False
        return PromptHistory(tuple(tokens[-MAX_PREVIOUS_TOKENS:]), initial)


def bucketed(tokens: Sequence[int]) -> tuple[int, ...]:
    """The last `b` tokens for the longest bucket `b` that `tokens` fills; fewer tokens than
    the smallest bucket are kept whole."""
    for size in PREVIOUS_BUCKETS:
        if len(tokens) >= size:
            return tuple(tokens[len(tokens) - size :])
    return tuple(tokens)


async def decode_windows(
    jobs: Sequence[WindowJob],
    decode: Callable[[WindowJob], Awaitable[WindowOutput]],
    history: PromptHistory,
    *,
    condition_on_previous_text: bool,
) -> AsyncIterator[WindowOutput]:
    """The request's window outputs in order.

    With context, window k+1 is queued once window k is decoded, with the history so far as
    its previous text (each wave still shares batches with other requests' windows). Without,
    every window is queued at once with the initial prompt only.
    """
    if not condition_on_previous_text:
        first = history.previous()
        tasks = [asyncio.ensure_future(decode(replace(job, previous=first))) for job in jobs]
        try:
            for task in tasks:
                yield await task
        finally:
            for task in tasks:
                task.cancel()
        return
    for job in jobs:
        output = await decode(replace(job, previous=history.previous()))
        history = history.after(output.segments)
        yield output
