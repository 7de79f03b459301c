"""Every Kafka topic newsalert uses: the only place topic names are spelled.

Pure data: which topics exist, what each holds, how it is keyed and cleaned up. Creating them
is `services.common.kafka.ensure_topics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from schemas.alert import Alert
from schemas.article import Article, RejectedRecord
from schemas.delivery import DeadLetter, DeliveryAttempt, DeliveryTask
from schemas.health import EndpointStatus
from schemas.replay import ReplayRequest
from schemas.story import StoryRecord
from schemas.subscription import Subscription
from schemas.watchlist import RuleRecord

CleanupPolicy = Literal["delete", "compact"]

_WEEK_MS = 7 * 24 * 3600 * 1000

# The most one record's key and value may take: the broker's default message.max.bytes (the
# topics are created without their own), less a KiB for the framing of the batch around it
# (61 bytes) and of the record (a few dozen).
# Kafka refuses a larger record on every retry, so whatever holds one must be told before it
# is queued, not after.
MAX_RECORD_BYTES = 1_048_588 - 1024


def record_size(key: bytes | None, value: bytes | None) -> int:
    """What a record's key and value take, as `MAX_RECORD_BYTES` counts them."""
    return len(key or b"") + len(value or b"")


def record_key(tenant: str, object_id: str) -> str:
    """The key of a tenant's object on a compacted topic: `tenant/object_id`."""
    return f"{tenant}/{object_id}"


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its full name, payload schema, key and retention."""

    name: str
    schema: type[BaseModel]
    key: str
    partitions: int
    cleanup_policy: CleanupPolicy = "delete"
    retention_ms: int = _WEEK_MS
    description: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        """Topic-level configuration as Kafka expects it at creation."""
        cfg = {"cleanup.policy": self.cleanup_policy, **self.extra_config}
        if self.cleanup_policy == "delete":
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


@dataclass(frozen=True)
class Topics:
    """The full topic set for one prefix, partition count and retry schedule."""

    articles: TopicSpec
    articles_dlq: TopicSpec
    alerts: TopicSpec
    rules: TopicSpec
    stories: TopicSpec
    subscriptions: TopicSpec
    endpoint_status: TopicSpec
    replays: TopicSpec
    deliveries: TopicSpec
    retries: tuple[TopicSpec, ...]
    deliveries_dlq: TopicSpec

    def all(self) -> list[TopicSpec]:
        """Every topic, in a stable order."""
        return [
            self.articles,
            self.articles_dlq,
            self.alerts,
            self.rules,
            self.stories,
            self.subscriptions,
            self.endpoint_status,
            self.replays,
            self.deliveries,
            *self.retries,
            self.deliveries_dlq,
        ]


def build_topics(prefix: str, partitions: int, retry_steps: int) -> Topics:
    """Name and describe every topic.

    Args:
        prefix: prepended to every name (`KafkaSettings.topic_prefix`).
        partitions: partitions of the high-volume topics (articles, alerts, deliveries, retries).
        retry_steps: length of the retry schedule; one retry topic per step, so every record
            in a retry topic waits the same delay and the topic stays in `not_before` order.

    Returns:
        The `Topics` set. Compacted topics (rules, subscriptions) use one partition: they are
        small, and every reader needs all of them in order.
    """

    def name(suffix: str) -> str:
        return f"{prefix}{suffix}"

    # Compacted topics keep the latest value per key forever, so they must never be deleted
    # by age; a shorter segment lets compaction run soon after a rule changes.
    compacted = {"segment.ms": str(3600 * 1000), "min.cleanable.dirty.ratio": "0.1"}
    return Topics(
        articles=TopicSpec(
            name("articles.v1"),
            Article,
            "article_id",
            partitions,
            description="Every accepted article; a shared stream that belongs to no tenant.",
        ),
        articles_dlq=TopicSpec(
            name("articles.dlq.v1"),
            RejectedRecord,
            "source topic/partition/offset",
            1,
            retention_ms=4 * _WEEK_MS,
            description="Article records the matcher could not decode, with the reason.",
        ),
        alerts=TopicSpec(
            name("alerts.v1"),
            Alert,
            "tenant/rule_id",
            partitions,
            description="One record per (rule, article) match.",
        ),
        rules=TopicSpec(
            name("rules.v1"),
            RuleRecord,
            "tenant/rule_id",
            1,
            "compact",
            extra_config=compacted,
            description="Watchlist rules; a tombstone (null value) deletes a rule.",
        ),
        stories=TopicSpec(
            name("stories.v1"),
            StoryRecord,
            "article_id",
            1,
            "compact",
            extra_config=compacted,
            description="The matcher's story index, one record per article in the window; "
            "every worker follows all of it. Evicted articles get tombstones.",
        ),
        subscriptions=TopicSpec(
            name("subscriptions.v1"),
            Subscription,
            "tenant/subscription_id",
            1,
            "compact",
            extra_config=compacted,
            description="Webhook subscriptions; a tombstone deletes one.",
        ),
        endpoint_status=TopicSpec(
            name("endpoint-status.v1"),
            EndpointStatus,
            "tenant/subscription_id",
            1,
            "compact",
            extra_config=compacted,
            description="How each subscription's deliveries go, written by the notifier.",
        ),
        replays=TopicSpec(
            name("replays.v1"),
            ReplayRequest,
            "tenant/subscription_id",
            1,
            retention_ms=_WEEK_MS,
            description="Replays asked for through the API, for the notifier to carry out.",
        ),
        deliveries=TopicSpec(
            name("deliveries.v1"),
            DeliveryAttempt,
            "tenant/subscription_id",
            partitions,
            description="The outcome of every webhook attempt, for health and replay listings.",
        ),
        retries=tuple(
            TopicSpec(
                name(f"deliveries.retry.{step}.v1"),
                DeliveryTask,
                "tenant/subscription_id",
                partitions,
                description=f"Deliveries waiting for retry attempt {step}.",
            )
            for step in range(1, retry_steps + 1)
        ),
        deliveries_dlq=TopicSpec(
            name("deliveries.dlq.v1"),
            DeadLetter,
            "tenant/subscription_id",
            partitions,
            retention_ms=4 * _WEEK_MS,
            description="Alerts that exhausted every retry, with every attempt's outcome.",
        ),
    )
