"""Prometheus metrics of the outbox dispatcher and the channels; shown on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OUTBOX_SENT = Counter("nudge_outbox_sent_total", "Outbox messages sent", ["channel", "lane"])
OUTBOX_FAILED = Counter(
    "nudge_outbox_failed_total", "Outbox messages that failed for good", ["channel", "lane"]
)
OUTBOX_RETRIED = Counter(
    "nudge_outbox_retried_total", "Send attempts that will be tried again", ["channel", "lane"]
)
OUTBOX_BLOCKED = Counter(
    "nudge_outbox_blocked_total", "Sends refused because the customer is unreachable", ["channel"]
)
OUTBOX_SKIPPED = Counter(
    "nudge_outbox_skipped_total", "Outbox messages skipped at send time", ["reason"]
)
OUTBOX_POSTPONED = Counter(
    "nudge_outbox_postponed_total", "Outbox messages postponed at send time", ["reason"]
)
OUTBOX_UNKNOWN = Counter(
    "nudge_outbox_unknown_total", "Rows left in sending by a stopped dispatcher, now unknown"
)
TELEGRAM_RETRY_AFTER = Counter(
    "nudge_telegram_retry_after_total", "429 answers from Telegram (the bot paused)"
)
QUEUE_DEPTH = Gauge("nudge_outbox_queue_depth", "Outbox rows due now and not yet claimed")
QUEUE_LAG = Gauge(
    "nudge_outbox_oldest_lag_seconds", "How long the oldest due, unclaimed row has waited"
)
SEND_LAG = Histogram(
    "nudge_outbox_lag_seconds",
    "Time from due_at to the send",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
SEND_LATENCY = Histogram(
    "nudge_send_seconds",
    "Time of one send request to the messenger",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
