"""Prometheus metrics of the API and the dispatcher, on a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("journeys_events_accepted_total", "Events stored", registry=r)
        self.deduped = Counter(
            "journeys_events_deduped_total",
            "Events ignored as duplicates (messageId seen)",
            registry=r,
        )
        self.rejected = Counter(
            "journeys_requests_rejected_total", "Requests refused", ["reason"], registry=r
        )
        self.latency = Histogram(
            "journeys_request_seconds", "Ingestion request latency", ["endpoint"], registry=r
        )
        self.delivered = Counter(
            "journeys_events_delivered_total", "Events delivered to customer workflows", registry=r
        )
        self.delivery_failures = Counter(
            "journeys_delivery_failures_total", "Events whose delivery failed (retried)", registry=r
        )
        self.dead_letters = Counter(
            "journeys_dead_letters_total",
            "Events whose delivery failed for good, moved to dead letters",
            registry=r,
        )
        self.dead_letters_waiting = Gauge(
            "journeys_dead_letters_waiting", "Dead letters waiting for an admin", registry=r
        )
        self.outbox = Gauge("journeys_outbox_events", "Events waiting for delivery", registry=r)
