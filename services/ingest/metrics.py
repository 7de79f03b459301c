"""The ingest service's metrics: `newsalert_ingest_*`, low-cardinality labels only."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.metrics import LATENCY_BUCKETS


@dataclass(frozen=True)
class IngestMetrics:
    """Requests by route and status, articles by outcome, produce latency, feed polls."""

    requests: Counter
    request_seconds: Histogram
    articles: Counter
    produce_seconds: Histogram
    feed_polls: Counter
    feed_items: Counter
    feed_poll_seconds: Histogram

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
            # No feed label: the URL is in every log line about a failure, and URLs may carry
            # access tokens that have no place in a time series.
            feed_polls=Counter(
                "newsalert_ingest_feed_polls_total",
                "Feed fetches, by outcome (updated, not_modified, http_error, network_error, "
                "timeout, too_large, unreadable, publish_error, error).",
                ["outcome"],
                registry=registry,
            ),
            feed_items=Counter(
                "newsalert_ingest_feed_items_total",
                "Items read from feeds, by outcome (accepted, duplicate, skipped: unreadable or "
                "too large).",
                ["outcome"],
                registry=registry,
            ),
            feed_poll_seconds=Histogram(
                "newsalert_ingest_feed_poll_seconds",
                "Time to poll one feed: fetch, parse and publish its new items.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
        )
