"""The matcher worker's metrics: `newsalert_matcher_*`, no per-rule or per-tenant labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.common import Severity
from services.common.metrics import LATENCY_BUCKETS

# A full compile of 100k rules takes seconds; one rule's update well under one.
COMPILE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class MatcherMetrics:
    """Articles in, alerts out, match time, rules, compile time, consumer lag."""

    articles: Counter
    alerts: Counter
    match_seconds: Histogram
    rules_loaded: Gauge
    rule_errors: Counter
    compile_seconds: Histogram
    consumer_lag: Gauge
    stories: Gauge
    produce_retries: Counter
    alerts_too_large: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> MatcherMetrics:
        """Create the metrics on `registry`, every label value present from the start.

        A series that appears only at its first increment hides that increment from
        `increase()`: alerts on dead letters would miss the first one.
        """
        metrics = cls._create(registry)
        for outcome in ("matched", "unmatched", "dead_letter"):
            metrics.articles.labels(outcome)
        for severity in Severity:
            metrics.alerts.labels(severity.value)
        return metrics

    @classmethod
    def _create(cls, registry: CollectorRegistry) -> MatcherMetrics:
        return cls(
            articles=Counter(
                "newsalert_matcher_articles_total",
                "Article records consumed, by outcome (matched, unmatched, dead_letter: not an "
                "article, or an alert of it too large to produce).",
                ["outcome"],
                registry=registry,
            ),
            alerts=Counter(
                "newsalert_matcher_alerts_total",
                "Alerts produced, by severity.",
                ["severity"],
                registry=registry,
            ),
            match_seconds=Histogram(
                "newsalert_matcher_match_seconds",
                "Time to evaluate every rule against one article and build its alerts.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            rules_loaded=Gauge(
                "newsalert_matcher_rules_loaded",
                "Rules compiled into the index this worker matches with.",
                registry=registry,
            ),
            rule_errors=Counter(
                "newsalert_matcher_rule_errors_total",
                "Rule records refused (invalid record or a rule that fails to compile).",
                registry=registry,
            ),
            compile_seconds=Histogram(
                "newsalert_matcher_compile_seconds",
                "Time to compile a batch of rule changes into a new index.",
                buckets=COMPILE_BUCKETS,
                registry=registry,
            ),
            consumer_lag=Gauge(
                "newsalert_matcher_consumer_lag",
                "Article records waiting in the partitions this worker owns.",
                registry=registry,
            ),
            stories=Gauge(
                "newsalert_matcher_stories",
                "Articles held in the story index (the grouping window).",
                registry=registry,
            ),
            produce_retries=Counter(
                "newsalert_matcher_produce_retries_total",
                "Batches of alerts or story records Kafka did not store, queued to send again.",
                registry=registry,
            ),
            alerts_too_large=Counter(
                "newsalert_matcher_alerts_too_large_total",
                "Alerts left out, too large for a Kafka record (their article is dead-lettered).",
                registry=registry,
            ),
        )
