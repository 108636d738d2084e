"""Prometheus metrics the service exposes on /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter("nudge_http_requests_total", "HTTP requests served", ["route", "status"])
WEBHOOK_DELIVERIES = Counter(
    "nudge_webhook_deliveries_total", "Shop webhook deliveries by outcome", ["platform", "outcome"]
)
HTTP_LATENCY = Histogram("nudge_http_request_seconds", "HTTP request latency", ["route"])


def render() -> tuple[bytes, str]:
    """Return the metrics in Prometheus text format with its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
