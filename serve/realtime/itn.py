"""Inverse text normalisation of finals ("twenty three" -> "23") with text2num. Lazy import."""

from __future__ import annotations

ITN_LANGUAGES = frozenset({"en", "fr", "es", "pt", "de", "it", "nl", "da"})
"""Languages text2num's `alpha2digit` handles."""


def supports_itn(language: str | None) -> bool:
    return language is not None and language.split("-")[0].lower() in ITN_LANGUAGES


def apply_itn(text: str, language: str | None) -> str:
    """Numbers spelled out in `text` as digits; unchanged for languages text2num lacks."""
    if not text or not supports_itn(language):
        return text
    from text_to_num import alpha2digit  # type: ignore[import-untyped]

    assert language is not None
    result: str = alpha2digit(text, language.split("-")[0].lower())
    return result
