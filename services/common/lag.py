"""Consumer lag as the broker sees it: for the partitions one group member owns, the records
between the group's committed offset and the partition's end.

A member's own fetcher learns end offsets only from the records it fetches. A member that
stopped consuming (a full delivery window, a broker refusing its writes) would go on
reporting the lag it had when it stopped, and "lag growing" would stay silent exactly when it
matters. The probe asks the broker instead, on connections of its own, every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# aiokafka ships no type information; see services/common/kafka.py.
from aiokafka import TopicPartition  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]
from prometheus_client import Gauge

from services.common.kafka import make_consumer

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
        """Connect now rather than at the first reading.

        A service that stops while a reading is connecting would leave aiokafka's bootstrap
        connection open (it is not safe to cancel); connected here, before any reading task
        runs, the readings never connect. After a failed attempt they do, and retry.
        """
        await self._connected()

    async def stop(self) -> None:
        """Close the probe's connections, if it made them."""
        admin, offsets = self._admin, self._offsets
        self._admin = self._offsets = None
        # Each closed on its own: one that was only half open must not keep the other open.
        if offsets is not None:
            with contextlib.suppress(Exception):
                await offsets.stop()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    async def _connected(self) -> tuple[Any, Any]:
        # aiokafka clients belong to the loop they are made in, so they are made here.
        if self._admin is None or self._offsets is None:
            self._admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap, client_id="newsalert-lag-probe"
            )
            # Groupless: it only reads offsets, never records, and joins no group.
            self._offsets = make_consumer(
                self._bootstrap, group_id=None, client_id="newsalert-lag-probe"
            )
            try:
                await self._admin.start()
                await self._offsets.start()
            except BaseException:
                await self.stop()
                raise
        return self._admin, self._offsets

    async def lag(self, owned: Iterable[Partition]) -> int:
        """Records waiting in `owned`, by the broker's end offsets and the group's commits."""
        partitions = [TopicPartition(topic, partition) for topic, partition in owned]
        if not partitions:
            return 0
        admin, offsets = await self._connected()
        ends = await offsets.end_offsets(partitions)
        commits = await admin.list_consumer_group_offsets(self._group, partitions=partitions)
        committed = {tp: meta.offset for tp, meta in commits.items() if meta.offset >= 0}
        uncommitted = [tp for tp in partitions if tp not in committed]
        beginnings = await offsets.beginning_offsets(uncommitted) if uncommitted else {}
        return records_waiting(ends, committed, beginnings)


async def report_lag(
    probe: LagProbe,
    owned: Callable[[], Iterable[Partition]],
    gauge: Gauge,
    interval_s: float,
) -> None:
    """Set `gauge` to the lag of the partitions `owned()` names, every `interval_s`, for ever.

    A reading that fails (a broker that does not answer, a connection lost) leaves the gauge
    as it was and is tried again next time: the loop outlives any one failure.
    """
    while True:
        try:
            gauge.set(await probe.lag(owned()))
        except Exception as exc:  # a metric must never end the loop that keeps it current
            log.warning("consumer lag could not be read", extra={"error": repr(exc)})
        await asyncio.sleep(interval_s)
