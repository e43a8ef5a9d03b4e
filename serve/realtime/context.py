"""What a session's decodes are told besides the audio: language, hot words and the previous
utterance, as the `TranscribeOptions` the partial policy refines.

The hot-word mechanism is chosen by capability, not by architecture: a model declaring
`hot_words` gets them natively (`TranscribeOptions.hot_words`); otherwise they go into the
initial prompt if the model takes one. The previous final is prompt context only for models
with `initial_prompt`, bounded, and the session drops it after a repetition loop.
"""

from __future__ import annotations

from engines.base import TranscribeOptions
from engines.manifest import Capabilities

HOT_WORDS_PREFIX = "Glossary:"


def bounded_tail(text: str, max_chars: int) -> str:
    """The end of `text`, at most `max_chars`, cut at a word boundary."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    tail = text[-max_chars:]
    space = tail.find(" ")
    return tail[space + 1 :] if 0 <= space < len(tail) - 1 else tail


def decode_options(
    capabilities: Capabilities,
    hot_words: list[str],
    previous_text: str | None,
    *,
    max_prompt_chars: int,
    session_prompt: str | None = None,
    language: str | None = None,
    find_speech: bool = False,
) -> TranscribeOptions:
    """Realtime decodes VAD-filter only when the session ran no VAD over the audio
    (`find_speech`, client commits): then the final decode finds the speech itself, as REST
    does by default, so committed silence stays silent. Otherwise the session's own VAD cut
    the segment."""
    words = tuple(w.strip() for w in hot_words if w.strip())
    native = words if capabilities.hot_words else ()
    parts: list[str] = []
    if capabilities.initial_prompt:
        if session_prompt:
            parts.append(session_prompt.strip())
        if words and not capabilities.hot_words:
            parts.append(f"{HOT_WORDS_PREFIX} {', '.join(words)}.")
        if previous_text:
            parts.append(bounded_tail(previous_text, max_prompt_chars))
    prompt = " ".join(p for p in parts if p) or None
    return TranscribeOptions(
        language=language, prompt=prompt, hot_words=native, vad_filter=find_speech
    )
