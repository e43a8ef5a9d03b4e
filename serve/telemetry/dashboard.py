# ruff: noqa: E501  (PromQL and panel descriptions read better unbroken)
"""The Grafana dashboard for Theo, generated: throughput, latency percentiles, real-time factor,
dynamic batching, realtime sessions, errors and Serve replicas (Ray Serve's `ray_serve_*`).

    python -m serve.telemetry.dashboard          # writes docs/ and the chart's copy
    python -m serve.telemetry.dashboard --check  # exit 1 when either is stale

In a cluster the `theo_*` families come from Ray's metrics export with a `ray_` prefix, which
the chart's PodMonitor strips, so the same queries work locally (`/metrics`) and in a cluster.
Every query selects the `namespace` and `release` variables (labels the PodMonitor gives each
series; "All" also matches a local scrape, which has neither).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TARGETS = (
    ROOT / "docs" / "grafana-dashboard.json",
    ROOT / "charts/theo/files/grafana-dashboard.json",
)
UID = "theo-overview"
RATE = "$__rate_interval"
SCOPE = 'namespace=~"$namespace", release=~"$release"'
MODEL = f'{SCOPE}, model=~"$model"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    stack: bool = False
    width: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


def quantiles(
    metric: str, by: str, selector: str = MODEL, qs: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"p{round(q * 100)} {{{{{by}}}}}",
        )
        for q in qs
    )


def ratio(metric: str, by: str, selector: str = MODEL) -> Query:
    return Query(
        f"sum by ({by}) (rate({metric}_sum{{{selector}}}[{RATE}]))"
        f" / sum by ({by}) (rate({metric}_count{{{selector}}}[{RATE}]))",
        f"mean {{{{{by}}}}}",
    )


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Throughput and errors",
        (
            Panel(
                "Requests per second",
                (
                    Query(
                        f"sum by (model, route) (rate(theo_requests_total{{{MODEL}}}[{RATE}]))",
                        "{{model}} {{route}}",
                    ),
                ),
                "reqps",
                "Gateway requests by model and route (REST and realtime).",
                stack=True,
            ),
            Panel(
                "Audio transcribed (audio seconds per second)",
                (
                    Query(
                        f"sum by (model, engine) (rate(theo_audio_seconds_total{{{MODEL}}}[{RATE}]))",
                        "{{model}} ({{engine}})",
                    ),
                ),
                "short",
                "Throughput in audio: 10 means ten seconds of audio transcribed every second.",
                stack=True,
            ),
            Panel(
                "Errors by status",
                (
                    Query(
                        f'sum by (status) (rate(theo_requests_total{{{MODEL}, status!~"2.."}}[{RATE}]))',
                        "{{status}}",
                    ),
                    Query(
                        f"sum by (model) (rate(theo_rate_limited_total{{{MODEL}}}[{RATE}]))",
                        "rate limited {{model}}",
                    ),
                ),
                "reqps",
                "Non-2xx responses, and requests refused as overloaded or paced (rate limit).",
            ),
        ),
    ),
    (
        "Latency",
        (
            Panel(
                "Request latency (transcriptions, translations)",
                quantiles(
                    "theo_request_latency_seconds",
                    "model",
                    f'{MODEL}, route=~"transcriptions|translations"',
                ),
                "s",
                "End-to-end latency at the gateway, percentiles.",
                width=12,
            ),
            Panel(
                "Real-time factor by engine",
                quantiles("theo_real_time_factor", "engine", MODEL, (0.5, 0.95)),
                "short",
                "Processing time / audio duration per engine call; below 1 is faster than real time.",
                width=12,
            ),
        ),
    ),
    (
        "Dynamic batching",
        (
            Panel(
                "Batch size",
                (
                    ratio("theo_batch_size", "model"),
                    *quantiles("theo_batch_size", "model", MODEL, (0.5, 0.95)),
                ),
                "short",
                "Windows decoded together per engine batch.",
            ),
            Panel(
                "Batch wait and batch time",
                (
                    *quantiles("theo_batch_wait_seconds", "model", MODEL, (0.5, 0.95)),
                    *(
                        Query(q.expr, q.legend.replace("p", "batch p", 1))
                        for q in quantiles("theo_batch_latency_seconds", "model", MODEL, (0.95,))
                    ),
                ),
                "s",
                "How long a window waits for its batch, and how long a batch takes.",
            ),
            Panel(
                "Engine queue depth",
                (Query(f"sum by (model) (theo_queue_depth{{{MODEL}}})", "{{model}}"),),
                "short",
                "Windows waiting for or inside an engine batch.",
            ),
        ),
    ),
    (
        "Realtime sessions",
        (
            Panel(
                "Active sessions",
                (Query(f"sum by (model) (theo_realtime_sessions_active{{{MODEL}}})", "{{model}}"),),
                "short",
                stack=True,
            ),
            Panel(
                "First partial and final latency",
                (
                    *(
                        Query(q.expr, "first partial " + q.legend)
                        for q in quantiles(
                            "theo_realtime_first_partial_latency_seconds",
                            "model",
                            MODEL,
                            (0.5, 0.95),
                        )
                    ),
                    *(
                        Query(q.expr, "final " + q.legend)
                        for q in quantiles(
                            "theo_realtime_final_latency_seconds", "model", MODEL, (0.5, 0.95)
                        )
                    ),
                ),
                "s",
                "From speech audio arriving to the first partial; from the utterance's last audio to its final.",
            ),
            Panel(
                "Speech segments, drops, recoveries",
                (
                    Query(
                        f"sum by (model) (rate(theo_vad_speech_segments_total{{{MODEL}}}[{RATE}]))",
                        "speech segments {{model}}",
                    ),
                    Query(
                        f"sum by (model) (rate(theo_realtime_dropped_frames_seconds_total{{{MODEL}}}[{RATE}]))",
                        "dropped audio s/s {{model}}",
                    ),
                    Query(
                        f"sum by (model, kind) (rate(theo_recoveries_total{{{MODEL}}}[{RATE}]))",
                        "recoveries {{kind}} {{model}}",
                    ),
                    Query(
                        f"sum by (model) (rate(theo_realtime_segment_failures_total{{{MODEL}}}[{RATE}]))",
                        "failed segments {{model}}",
                    ),
                ),
                "short",
                "Per second: VAD speech segments, seconds of audio dropped (full buffer), recovered engine calls, segments that failed.",
            ),
        ),
    ),
    (
        "Ray Serve replicas",
        (
            Panel(
                "Replicas: target vs healthy",
                (
                    Query(
                        f"sum by (deployment) (ray_serve_autoscaling_target_replicas{{{SCOPE}}})",
                        "target {{deployment}}",
                    ),
                    Query(
                        f"sum by (deployment) (ray_serve_deployment_replica_healthy{{{SCOPE}}})",
                        "healthy {{deployment}}",
                    ),
                ),
                "short",
                "What the Serve autoscaler wants and what runs. A gap that lasts means pending pods or GPU nodes.",
            ),
            Panel(
                "Serve processing latency p95 and queued requests",
                (
                    Query(
                        f"histogram_quantile(0.95, sum by (le, deployment) (rate(ray_serve_deployment_processing_latency_ms_bucket{{{SCOPE}}}[{RATE}]))) / 1000",
                        "p95 {{deployment}}",
                    ),
                    Query(
                        f"sum by (deployment) (ray_serve_deployment_queued_queries{{{SCOPE}}})",
                        "queued {{deployment}}",
                    ),
                ),
                "s",
                "Per deployment, from Ray Serve's own metrics.",
            ),
            Panel(
                "Serve requests, HTTP errors, model loads",
                (
                    Query(
                        f"sum by (deployment) (rate(ray_serve_deployment_request_counter_total{{{SCOPE}}}[{RATE}]))",
                        "requests {{deployment}}",
                    ),
                    Query(
                        f"sum by (error_code) (rate(ray_serve_num_http_error_requests_total{{{SCOPE}}}[{RATE}]))",
                        "HTTP {{error_code}} (proxy)",
                    ),
                    Query(
                        f"sum by (model) (rate(theo_model_load_seconds_count{{{MODEL}}}[{RATE}])) * 60",
                        "model loads/min {{model}}",
                    ),
                ),
                "reqps",
            ),
        ),
    ),
)


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "custom": {
                    "stacking": {"mode": "normal" if panel.stack else "none"},
                    "fillOpacity": 10,
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "expr": q.expr,
                "legendFormat": q.legend,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
            }
            for i, q in enumerate(panel.queries)
        ],
        **panel.extra,
    }


def _label_variable(name: str, label: str, series: str) -> dict[str, Any]:
    """A multi-value query variable over one label (`All` matches series without it too)."""
    query = f"label_values({series}, {name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
        "hide": 0,
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for title, row in ROWS:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row:
            panels.append(_panel(panel, panel_id, x, y))
            panel_id, x = panel_id + 1, x + panel.width
        y += 8
    return {
        "uid": UID,
        "title": "Theo speech-to-text",
        "description": "Theo on Ray Serve: throughput, latency, real-time factor, batching, realtime sessions, errors, replicas.",
        "tags": ["theo", "ray-serve", "speech-to-text"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                _label_variable("namespace", "Namespace", "ray_serve_deployment_replica_healthy"),
                _label_variable(
                    "release",
                    "Release",
                    'ray_serve_deployment_replica_healthy{namespace=~"$namespace"}',
                ),
                {
                    "name": "model",
                    "label": "Model",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": {
                        "query": f"label_values(theo_requests_total{{{SCOPE}}}, model)",
                        "refId": "model",
                    },
                    "definition": f"label_values(theo_requests_total{{{SCOPE}}}, model)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                    "hide": 0,
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a written copy is stale")
    args = parser.parse_args(argv)
    text = render()
    stale = [p for p in TARGETS if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    for path in TARGETS:
        if path.parent.exists():
            path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
