"""The notifier's metrics: `newsalert_notifier_*`, no per-subscription or per-tenant labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.delivery import OutcomeKind
from services.common.metrics import LATENCY_BUCKETS


@dataclass(frozen=True)
class NotifierMetrics:
    """Deliveries and attempts by outcome, latencies, retries, dead letters, disabled hooks."""

    deliveries: Counter
    attempts: Counter
    delivery_seconds: Histogram
    end_to_end_seconds: Histogram
    retries_queued: Gauge
    dead_letters: Counter
    subscriptions_disabled: Gauge
    consumer_lag: Gauge
    settle_retries: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> NotifierMetrics:
        """Create the metrics on `registry`, every label value present from the start.

        A series that appears only at its first increment hides that increment from
        `increase()`: the dead-letter and failure-ratio alerts would miss it.
        """
        metrics = cls._create(registry)
        for outcome in ("delivered", "retry", "gone", "failed", "dead_letter", "dropped"):
            metrics.deliveries.labels(outcome)
        for outcome in OutcomeKind:
            metrics.attempts.labels(outcome.value)
        return metrics

    @classmethod
    def _create(cls, registry: CollectorRegistry) -> NotifierMetrics:
        return cls(
            deliveries=Counter(
                "newsalert_notifier_deliveries_total",
                "Deliveries (alert x subscription) settled, by outcome: delivered, retry "
                "(queued for a later attempt), deferred (queued unattempted, behind its "
                "endpoint's backlog; counted again when it settles), gone (410: "
                "subscription disabled), failed, "
                "dead_letter, dropped (the subscription was deleted meanwhile).",
                ["outcome"],
                registry=registry,
            ),
            attempts=Counter(
                "newsalert_notifier_attempts_total",
                "Alerts attempted, by outcome: delivered, retry, gone, failed (a batch request "
                "counts each of its alerts).",
                ["outcome"],
                registry=registry,
            ),
            delivery_seconds=Histogram(
                "newsalert_notifier_delivery_seconds",
                "Duration of one webhook HTTP request (one alert, or a batch).",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            end_to_end_seconds=Histogram(
                "newsalert_notifier_end_to_end_seconds",
                "From ingest accepting the article to the webhook's 2xx (first attempts).",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            retries_queued=Gauge(
                "newsalert_notifier_retries_queued",
                "Deliveries waiting in the retry topics (as last seen by this instance).",
                registry=registry,
            ),
            dead_letters=Counter(
                "newsalert_notifier_dead_letters_total",
                "Deliveries sent to the dead-letter topic after their last attempt.",
                registry=registry,
            ),
            subscriptions_disabled=Gauge(
                "newsalert_notifier_subscriptions_disabled",
                "Subscriptions currently disabled (410 Gone, failing too long, or by hand).",
                registry=registry,
            ),
            consumer_lag=Gauge(
                "newsalert_notifier_consumer_lag",
                "Alert records waiting in the partitions this instance owns.",
                registry=registry,
            ),
            settle_retries=Counter(
                "newsalert_notifier_settle_retries_total",
                "Outcomes of deliveries that Kafka did not store at first (busy or away) and "
                "were written again, and deliveries settled again after an unforeseen error.",
                registry=registry,
            ),
        )
