"""Checks on a trace received by the in-memory OTLP collector."""

from __future__ import annotations

from tests.observability.collector import ReceivedSpan


def by_name(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    out: dict[str, list[ReceivedSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{name}: {len(found)} spans in {[s.name for s in spans]}"
    return found[0]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_id == parent.span_id]


def child_names(spans: list[ReceivedSpan], parent: ReceivedSpan) -> set[str]:
    return {s.name for s in children(spans, parent)}


def assert_within(child: ReceivedSpan, parent: ReceivedSpan, slack_ns: int = 5_000_000) -> None:
    """A child starts after and ends before its parent (one machine's clock, a little slack)."""
    assert child.start_ns >= parent.start_ns - slack_ns, (child.name, parent.name)
    assert child.end_ns <= parent.end_ns + slack_ns, (child.name, parent.name)


def assert_engine_call(spans: list[ReceivedSpan], engine: ReceivedSpan) -> None:
    """An engine server span: prepare (with the VAD window planning), each window's queue
    wait and batch (with its inference), and the post-processing."""
    assert engine.service == "theo-engine"
    names = child_names(spans, engine)
    assert {"prepare", "queue_wait", "batch", "postprocess"} <= names, names
    prepare = next(s for s in children(spans, engine) if s.name == "prepare")
    assert "vad" in child_names(spans, prepare)
    for batch in (s for s in children(spans, engine) if s.name == "batch"):
        assert batch.attributes["theo.batch.size"] >= 1
        assert child_names(spans, batch) == {"inference"}
        assert_within(children(spans, batch)[0], batch)
    for s in children(spans, engine):
        assert_within(s, engine)
