"""The ingest service's metrics: `newsalert_ingest_*`, low-cardinality labels only."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.metrics import LATENCY_BUCKETS


@dataclass(frozen=True)
class IngestMetrics:
    """Requests by route and status, articles by outcome, produce latency."""

    requests: Counter
    request_seconds: Histogram
    articles: Counter
    produce_seconds: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> IngestMetrics:
        """Create the metrics on `registry`."""
        return cls(
            requests=Counter(
                "newsalert_ingest_requests_total",
                "HTTP requests by route template, method and status code.",
                ["route", "method", "status"],
                registry=registry,
            ),
            request_seconds=Histogram(
                "newsalert_ingest_request_seconds",
                "Time to answer an HTTP request, by route template.",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            articles=Counter(
                "newsalert_ingest_articles_total",
                "Articles received, by outcome (accepted, duplicate, refused) and reason.",
                ["outcome", "reason"],
                registry=registry,
            ),
            produce_seconds=Histogram(
                "newsalert_ingest_produce_seconds",
                "Time from send to the broker's acknowledgement (acks=all), by topic.",
                ["topic"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
        )
