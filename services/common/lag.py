"""Consumer lag as the broker sees it: for the partitions one group member owns, the records
between the group's committed offset and the partition's end.

A member's own fetcher learns end offsets only from the records it fetches. A member that
stopped consuming (a full delivery window, a broker refusing its writes) would go on
reporting the lag it had when it stopped, and "lag growing" would stay silent exactly when it
matters. The probe asks the broker instead, on connections of its own, every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# aiokafka ships no type information; see services/common/kafka.py.
from aiokafka import TopicPartition  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]
from prometheus_client import Gauge

from services.common.kafka import KafkaError, make_consumer

log = logging.getLogger(__name__)

Partition = tuple[str, int]
"""(topic, partition); faust's and aiokafka's partition tuples are both such pairs."""


def records_waiting(
    ends: Mapping[Partition, int],
    committed: Mapping[Partition, int],
    beginnings: Mapping[Partition, int],
) -> int:
    """Records not yet done, summed over `ends`' partitions: from the committed offset (the
    partition's first offset where the group has committed none) to the end, never below 0."""
    waiting = 0
    for partition, end in ends.items():
        start = committed.get(partition, -1)
        if start < 0:
            start = beginnings.get(partition, 0)
        waiting += max(0, end - start)
    return waiting


class LagProbe:
    """Asks the broker how far one consumer group is behind on the partitions given."""

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self._bootstrap = bootstrap
        self._group = group_id
        self._admin: Any = None
        self._offsets: Any = None

    async def start(self) -> None:
        """Connect; aiokafka clients belong to the loop they are made in, so they are made here."""
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap, client_id="newsalert-lag-probe"
        )
        # Groupless: it only reads offsets, never records, and joins no group.
        self._offsets = make_consumer(
            self._bootstrap, group_id=None, client_id="newsalert-lag-probe"
        )
        await self._admin.start()
        await self._offsets.start()

    async def stop(self) -> None:
        """Close both connections (if started)."""
        if self._offsets is not None:
            await self._offsets.stop()
        if self._admin is not None:
            await self._admin.close()

    async def lag(self, owned: Iterable[Partition]) -> int:
        """Records waiting in `owned`, by the broker's end offsets and the group's commits."""
        assert self._offsets is not None, "start the probe first"
        partitions = [TopicPartition(topic, partition) for topic, partition in owned]
        if not partitions:
            return 0
        ends = await self._offsets.end_offsets(partitions)
        commits = await self._admin.list_consumer_group_offsets(self._group, partitions=partitions)
        committed = {tp: meta.offset for tp, meta in commits.items() if meta.offset >= 0}
        uncommitted = [tp for tp in partitions if tp not in committed]
        beginnings = await self._offsets.beginning_offsets(uncommitted) if uncommitted else {}
        return records_waiting(ends, committed, beginnings)


async def report_lag(
    probe: LagProbe,
    owned: Callable[[], Iterable[Partition]],
    gauge: Gauge,
    interval_s: float,
) -> None:
    """Set `gauge` to the lag of the partitions `owned()` names, every `interval_s`, for ever.

    A broker that does not answer leaves the gauge as it was and is asked again next time.
    """
    while True:
        try:
            gauge.set(await probe.lag(owned()))
        except KafkaError as exc:
            log.warning("consumer lag could not be read", extra={"error": repr(exc)})
        await asyncio.sleep(interval_s)
