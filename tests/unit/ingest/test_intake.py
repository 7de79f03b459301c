"""Article intake: publish once per id, count every outcome; only the producer is faked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas.api import ArticleStatus
from schemas.article import ArticleIn
from services.common.topics import build_topics
from services.ingest.intake import ArticleIntake
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Publisher
from services.ingest.views import RecentArticleIds

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ITEM = ArticleIn(id="wire-1", title="Li Shangfu visits Moscow")


class FakeProducer:
    """Stands in for Kafka: records sends; can hold them until released, or fail them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failures = 0

    async def send_and_wait(self, topic: str, key: bytes, value: bytes) -> Any:
        await self.release.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unavailable")
        self.sent.append((topic, key))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def intake(producer: FakeProducer, registry: CollectorRegistry) -> ArticleIntake:
    metrics = IngestMetrics.register(registry)
    topics = build_topics("test.", partitions=1, retry_steps=1)
    publisher = Publisher(producer, topics, metrics.produce_seconds)
    recent = RecentArticleIds("unused:9092", topics.articles.name, window_s=3600)
    return ArticleIntake(publisher, recent, metrics.articles, lambda: NOW)


def _articles(registry: CollectorRegistry, outcome: str, reason: str = "") -> float:
    value = registry.get_sample_value(
        "newsalert_ingest_articles_total", {"outcome": outcome, "reason": reason}
    )
    return value or 0.0


async def test_an_article_is_published_once_and_then_is_a_duplicate(
    intake: ArticleIntake, producer: FakeProducer, registry: CollectorRegistry
) -> None:
    first = await intake.accept(ITEM, line=4)
    again = await intake.accept(ITEM)

    assert (first.status, first.article_id, first.line) == (ArticleStatus.ACCEPTED, "wire-1", 4)
    assert again.status is ArticleStatus.DUPLICATE
    assert producer.sent == [("test.articles.v1", b"wire-1")]
    assert (_articles(registry, "accepted"), _articles(registry, "duplicate")) == (1, 1)


async def test_the_same_article_arriving_while_its_first_copy_awaits_the_ack_is_a_duplicate(
    intake: ArticleIntake, producer: FakeProducer
) -> None:
    producer.release.clear()
    first = asyncio.create_task(intake.accept(ITEM))
    second = asyncio.create_task(intake.accept(ITEM))
    await asyncio.sleep(0)  # both reach the intake before Kafka answers
    producer.release.set()

    statuses = sorted(r.status for r in await asyncio.gather(first, second))

    assert statuses == [ArticleStatus.ACCEPTED, ArticleStatus.DUPLICATE]
    assert len(producer.sent) == 1


async def test_an_article_kafka_did_not_acknowledge_is_published_on_the_next_attempt(
    intake: ArticleIntake, producer: FakeProducer
) -> None:
    producer.failures = 1
    with pytest.raises(ConnectionError):
        await intake.accept(ITEM)

    retried = await intake.accept(ITEM)

    assert retried.status is ArticleStatus.ACCEPTED
    assert len(producer.sent) == 1


def test_refusals_are_counted_by_reason(intake: ArticleIntake, registry: CollectorRegistry) -> None:
    intake.refused("invalid")
    intake.refused("invalid", 2)
    intake.refused("empty")

    assert _articles(registry, "refused", "invalid") == 3
    assert _articles(registry, "refused", "empty") == 1
