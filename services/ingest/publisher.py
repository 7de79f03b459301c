"""Ingest's writes to Kafka: articles, rules and subscriptions, each acknowledged before 2xx."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Histogram

from schemas.replay import ReplayRequest
from schemas.subscription import Subscription
from schemas.watchlist import RuleRecord
from services.common.kafka import encode
from services.common.topics import Topics, record_key


class Publisher:
    """Sends records and waits for `acks=all`: when a call returns, Kafka has the record."""

    def __init__(self, producer: Any, topics: Topics, produce_seconds: Histogram) -> None:
        self._producer = producer
        self._topics = topics
        self._produce_seconds = produce_seconds

    async def _send(self, topic: str, key: str, value: bytes | None) -> None:
        started = time.perf_counter()
        await self._producer.send_and_wait(topic, key=key.encode("utf-8"), value=value)
        self._produce_seconds.labels(topic=topic).observe(time.perf_counter() - started)

    async def publish_article(self, article_id: str, value: bytes) -> None:
        """An article on the articles topic, keyed by its id; `value` is the Article, encoded."""
        await self._send(self._topics.articles.name, article_id, value)

    async def publish_rule(self, tenant: str, rule_id: str, record: RuleRecord | None) -> None:
        """A rule on the rules topic; None publishes the tombstone that deletes it."""
        value = encode(record) if record is not None else None
        await self._send(self._topics.rules.name, record_key(tenant, rule_id), value)

    async def publish_subscription(
        self, tenant: str, subscription_id: str, subscription: Subscription | None
    ) -> None:
        """A subscription on its topic; None publishes the tombstone that deletes it."""
        value = encode(subscription) if subscription is not None else None
        await self._send(
            self._topics.subscriptions.name, record_key(tenant, subscription_id), value
        )

    async def publish_replay(self, replay: ReplayRequest) -> None:
        """A replay request for the notifier."""
        await self._send(
            self._topics.replays.name,
            record_key(replay.tenant, replay.subscription_id),
            encode(replay),
        )
