"""Reading and writing topics in tests, with deadlines instead of sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

from schemas.article import Article
from services.common.kafka import make_consumer, make_producer, topic_partitions


async def produce(
    bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None]]
) -> None:
    """Send (key, value) records, in order, and wait until Kafka acknowledged every one."""
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        # All in flight at once (the idempotent producer keeps their order per partition).
        pending = [await producer.send(topic, value=value, key=key) for key, value in items]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


class TopicReader:
    """Reads one topic from its start, keeping every record seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[Any] = []
        self._consumer = make_consumer(bootstrap, topic, group_id=None)

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_s: float = 0.1) -> list[Any]:
        """Records that arrived within `timeout_s` (possibly none)."""
        fresh: list[Any] = []
        for batch in (await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))).values():
            fresh.extend(batch)
        self.records.extend(fresh)
        return fresh

    async def until(self, done: Callable[[list[Any]], bool], timeout_s: float = 30.0) -> list[Any]:
        """Read until `done(all records so far)` holds.

        Raises:
            TimeoutError: it did not within `timeout_s`; the message says how much was read.
        """

        async def read() -> None:
            while not done(self.records):
                await self.poll()

        try:
            await asyncio.wait_for(read(), timeout_s)
        except TimeoutError:
            raise TimeoutError(
                f"{self.topic}: condition not met after {len(self.records)} records"
            ) from None
        return self.records


async def read_until(
    bootstrap: str, topic: str, done: Callable[[list[Any]], bool], timeout_s: float = 30.0
) -> list[Any]:
    """Every record of `topic` from the start, read until `done(records)` holds."""
    async with TopicReader(bootstrap, topic) as reader:
        return await reader.until(done, timeout_s)


async def articles_in(bootstrap: str, topic: str, expect: int) -> list[Article]:
    """The first `expect` articles of `topic` (a TimeoutError after 10 s without them)."""
    records = await read_until(bootstrap, topic, lambda rs: len(rs) >= expect, timeout_s=10)
    return [Article.model_validate_json(r.value) for r in records]


async def record_count(bootstrap: str, topic: str) -> int:
    """How many records `topic` holds (the sum of its partitions' end offsets)."""
    from aiokafka import TopicPartition  # type: ignore[import-untyped,unused-ignore]

    consumer = make_consumer(bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
        return int(sum((await consumer.end_offsets(parts)).values()))
    finally:
        await consumer.stop()
