"""Reading a Prometheus text exposition into {(sample name, labels): value}."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, frozenset[tuple[str, str]]]


def samples(text: str) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def scrape(url: str) -> dict[Key, float]:
    response = httpx.get(f"{url}/metrics", timeout=30)
    response.raise_for_status()
    return samples(response.text)


def value(data: dict[Key, float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a labelled child not created yet)."""
    return data.get((name, frozenset(labels.items())), 0.0)


def total(data: dict[Key, float], name: str, **labels: str) -> float:
    """Sum over the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in data.items() if n == name and wanted <= ls)


def delta(before: dict[Key, float], after: dict[Key, float], name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)
