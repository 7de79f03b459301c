"""In-memory views of Kafka topics: the latest value per key of a compacted topic.

A view reads its topic from the beginning at start (see `TopicFollower`), is *ready* once it
has caught up, and keeps following afterwards. Kafka stays the source of
truth: a restarted process rebuilds the same view. A record that does not decode is logged
and skipped, never fatal: one bad record must not stop a service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from services.common.follower import TopicFollower
from services.common.kafka import decode

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)

Listener = Callable[[str, Any], None]


class CompactedView(TopicFollower, Generic[M]):
    """key -> latest value of one topic; a tombstone (null value) removes the key."""

    def __init__(self, bootstrap: str, topic: str, schema: type[M]) -> None:
        super().__init__(bootstrap, topic)
        self._schema = schema
        self._values: dict[str, M] = {}
        self._listeners: list[Listener] = []
        self.invalid_records = 0

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(key, value_or_None)` for every change, after the view applied it."""
        self._listeners.append(listener)

    def get(self, key: str) -> M | None:
        """The latest value for `key`, or None."""
        return self._values.get(key)

    def values(self, key_prefix: str = "") -> list[M]:
        """Every value whose key starts with `key_prefix`, in key order."""
        return [v for k, v in sorted(self._values.items()) if k.startswith(key_prefix)]

    def __len__(self) -> int:
        return len(self._values)

    def apply(self, key: str, value: M | None) -> None:
        """Record a change this process has just written to the topic (read-your-writes).

        The same record arrives again through the topic later; applying it twice is
        harmless because a view keeps only the latest value per key.
        """
        if value is None:
            self._values.pop(key, None)
        else:
            self._values[key] = value
        for listener in self._listeners:
            listener(key, value)

    async def _seek_start(self, consumer: Any, partitions: list[Any]) -> None:
        await consumer.seek_to_beginning(*partitions)

    def _absorb(self, record: Any) -> None:
        key = record.key.decode("utf-8", "replace") if record.key else ""
        if record.value is None:
            self.apply(key, None)
            return
        try:
            value = decode(self._schema, record.value)
        except ValidationError as exc:
            self.invalid_records += 1
            log.warning(
                "skipped an invalid record",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "error": str(exc)[:500],
                },
            )
            return
        self.apply(key, value)
