"""Which language a request may name: the one check shared by REST and both realtime
protocols (the `language` form field, `?language=`, `session.configure` and OpenAI's
`transcription.language`)."""

from __future__ import annotations

from collections.abc import Sequence

from engines.languages import normalize_language


class LanguageError(ValueError):
    """A language the request may not name; the client's `param` is `language`."""


def validate_language(
    value: str | None, languages: Sequence[str] = (), model: str | None = None
) -> str | None:
    """None or "" -> None (detect); an ISO-639-1 code or English name -> its code. Raises
    `LanguageError` for an unknown language, or one outside `languages` (a model's list;
    empty means any)."""
    if value is None or not value.strip():
        return None
    code = normalize_language(value)
    if code is None:
        shown = value if len(value) <= 32 else value[:32] + "..."
        raise LanguageError(f"Unsupported language {shown!r}; use an ISO-639-1 code such as 'en'.")
    if languages and code not in languages:
        raise LanguageError(f"The model '{model}' does not support language '{code}'.")
    return code
