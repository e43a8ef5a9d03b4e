from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from engines.base import SegmentResult, TranscriptionResult, WordTiming
from serve.errors import InvalidParameterError
from serve.gateway.formatting import (
    format_timestamp,
    render_json,
    render_srt,
    render_verbose_json,
    render_vtt,
)
from serve.gateway.forms import parse_request
from serve.gateway.serving import temperature_ladder


def result() -> TranscriptionResult:
    return TranscriptionResult(
        text="Hello there. General Kenobi.",
        language="en",
        duration=3661.5,
        segments=[
            SegmentResult(
                0,
                0.0,
                1.5,
                " Hello there.",
                [50364, 1],
                0,
                0.0,
                -0.2,
                1.1,
                0.01,
                [WordTiming(" Hello", 0.0, 0.7), WordTiming(" there.", 0.7, 1.5)],
            ),
            SegmentResult(
                1,
                3600.25,
                3661.5,
                " General Kenobi.",
                [2],
                360025,
                0.2,
                -0.3,
                1.0,
                0.02,
                [WordTiming(" General", 3600.25, 3601.0)],
            ),
        ],
    )


def test_timestamps() -> None:
    assert format_timestamp(3661.5, ",") == "01:01:01,500"
    assert format_timestamp(0.0004, ".") == "00:00:00.000"


def test_srt_numbering_and_times() -> None:
    assert render_srt(result()) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
        "2\n01:00:00,250 --> 01:01:01,500\nGeneral Kenobi.\n"
    )


def test_vtt_header_and_cues() -> None:
    assert render_vtt(result()) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n"
        "01:00:00.250 --> 01:01:01.500\nGeneral Kenobi.\n"
    )


def test_json_has_usage_in_seconds() -> None:
    assert render_json(result()) == {
        "text": "Hello there. General Kenobi.",
        "usage": {"type": "duration", "seconds": 3661.5},
    }


def test_verbose_json_shape_follows_granularities() -> None:
    both = render_verbose_json(result(), ["word", "segment"])
    assert set(both) == {"task", "language", "duration", "text", "segments", "words", "usage"}
    assert both["language"] == "english"
    assert set(both["segments"][0]) == {
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    }
    assert both["words"][0] == {"word": "Hello", "start": 0.0, "end": 0.7}
    assert "words" not in render_verbose_json(result(), ["segment"])
    assert "segments" not in render_verbose_json(result(), ["word"])


def form(*items: tuple[str, str]) -> FormData:
    return FormData(list(items))


def test_form_accepts_granularities_with_and_without_brackets() -> None:
    a = parse_request(
        form(
            ("model", "m"),
            ("timestamp_granularities[]", "word"),
            ("timestamp_granularities[]", "segment"),
        ),
        translation=False,
    )
    b = parse_request(form(("model", "m"), ("timestamp_granularities", "word")), translation=False)
    assert a.timestamp_granularities == ["word", "segment"]
    assert b.timestamp_granularities == ["word"]


def test_form_extensions_and_language_names() -> None:
    req = parse_request(
        form(
            ("model", "m"),
            ("hot_words", "Kubernetes, Ray ,"),
            ("vad_filter", "false"),
            ("language", "Portuguese"),
            ("stream", "true"),
            ("condition_on_previous_text", "0"),
        ),
        translation=False,
    )
    assert req.hot_words == ["Kubernetes", "Ray"]
    assert req.vad_filter is False and req.stream is True and req.language == "pt"
    assert req.condition_on_previous_text is False


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ((("model", "m"), ("response_format", "xml")), "response_format"),
        ((("model", "m"), ("temperature", "3")), "temperature"),
        ((("model", "m"), ("temperature", "hot")), "temperature"),
        ((("model", "m"), ("timestamp_granularities[]", "char")), "timestamp_granularities"),
        ((("model", "m"), ("language", "klingon")), "language"),
        ((("model", "m"), ("stream", "maybe")), "stream"),
        ((("model", "m"), ("condition_on_previous_text", "y")), "condition_on_previous_text"),
        ((("response_format", "json"),), "model"),
    ],
)
def test_form_errors_name_the_param(items: tuple[tuple[str, str], ...], param: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        parse_request(form(*items), translation=False)
    assert info.value.param == param
    assert info.value.status_code == 400


def test_temperature_ladder() -> None:
    assert temperature_ladder(0.0) == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert temperature_ladder(0.6) == (0.6, 0.8, 1.0)
    assert temperature_ladder(1.0) == (1.0,)
