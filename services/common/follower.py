"""Following a Kafka topic from a chosen start: read up to the end, then keep reading.

The views that services rebuild from Kafka at start (compacted rules and subscriptions,
recent article ids) share this life cycle: assign every partition, seek to where the view
begins, catch up with the end offsets seen at start (then the view is *ready*), and keep
following in the background until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from typing import Any

from services.common.kafka import make_consumer, topic_partitions


async def seek_to_time(consumer: Any, partitions: list[Any], since_epoch_s: float) -> None:
    """Position each partition at its first record at or after `since_epoch_s` (else its end)."""
    since_ms = int(since_epoch_s * 1000)
    starts = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
    end = await consumer.end_offsets(partitions)
    for partition in partitions:
        found = starts.get(partition)
        consumer.seek(partition, found.offset if found is not None else end[partition])


class TopicFollower(ABC):
    """Reads one topic, every partition, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    @abstractmethod
    async def _seek_start(self, consumer: Any, partitions: list[Any]) -> None:
        """Position every partition where the view begins."""

    @abstractmethod
    def _absorb(self, record: Any) -> None:
        """Apply one record to the view."""

    def _tick(self) -> None:  # noqa: B027 - a hook with nothing to do by default
        """Called after every poll while following; housekeeping goes here."""

    async def start(self, timeout_s: float = 30.0) -> None:
        """Read to the current end of the topic, then keep following it in the background.

        Raises:
            RuntimeError: the topic does not exist.
            TimeoutError: catching up took longer than `timeout_s`.
        """
        from aiokafka import TopicPartition  # type: ignore[import-untyped,unused-ignore]

        consumer = make_consumer(self._bootstrap, group_id=None)
        await consumer.start()
        self._consumer = consumer
        numbers = await self._partition_numbers(timeout_s)
        partitions = [TopicPartition(self._topic, p) for p in numbers]
        consumer.assign(partitions)
        await self._seek_start(consumer, partitions)
        end: dict[Any, int] = await consumer.end_offsets(partitions)
        await asyncio.wait_for(self._catch_up(consumer, end), timeout_s)
        self.ready.set()
        self._task = asyncio.create_task(self._follow(consumer), name=f"follow:{self._topic}")

    async def _partition_numbers(self, timeout_s: float) -> list[int]:
        # A topic created a moment ago may not be known to the broker's metadata yet.
        deadline = asyncio.get_running_loop().time() + min(timeout_s, 10.0)
        while not (numbers := await topic_partitions(self._bootstrap, self._topic)):
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"topic {self._topic} does not exist: run ensure_topics first")
            await asyncio.sleep(0.2)
        return numbers

    async def _catch_up(self, consumer: Any, end: dict[Any, int]) -> None:
        while await self._behind(consumer, end):
            self._absorb_all(await consumer.getmany(timeout_ms=200))

    @staticmethod
    async def _behind(consumer: Any, end: dict[Any, int]) -> bool:
        for partition, offset in end.items():
            if await consumer.position(partition) < offset:
                return True
        return False

    async def _follow(self, consumer: Any) -> None:
        while True:
            self._absorb_all(await consumer.getmany(timeout_ms=1000))
            self._tick()

    def _absorb_all(self, batches: dict[Any, list[Any]]) -> None:
        for records in batches.values():
            for record in records:
                self._absorb(record)

    async def stop(self) -> None:
        """Stop following and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
