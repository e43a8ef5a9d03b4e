"""Observability: Prometheus instruments mirrored into Ray's metrics export, OpenTelemetry
traces carried across Ray handle calls, and structured JSON logs."""
