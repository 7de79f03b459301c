"""Which offsets a consumer may commit while records finish out of order. No I/O.

Deliveries run concurrently, so record 7 may be done before record 5. Kafka keeps one
committed offset per partition, meaning "everything before this is done"; committing 8
while 5 is in flight would lose 5 on a crash. The tracker commits up to the oldest record
still in flight, never past it.
"""

from __future__ import annotations

from collections.abc import Hashable
from heapq import heappop, heappush


class OffsetTracker:
    """In-flight offsets per partition, and the offset safe to commit for each."""

    def __init__(self) -> None:
        self._in_flight: dict[Hashable, dict[int, int]] = {}  # partition -> offset -> refs
        self._heaps: dict[Hashable, list[int]] = {}
        self._next: dict[Hashable, int] = {}  # partition -> one past the newest offset seen
        self._committed: dict[Hashable, int] = {}

    def start(self, partition: Hashable, offset: int, refs: int = 1) -> None:
        """A record begins; it is done after `refs` calls to `finish` (0: done already)."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        if refs <= 0:
            return
        self._in_flight.setdefault(partition, {})[offset] = refs
        heappush(self._heaps.setdefault(partition, []), offset)

    def finish(self, partition: Hashable, offset: int) -> None:
        """One of the record's pieces of work is done."""
        pending = self._in_flight[partition]
        pending[offset] -= 1
        if pending[offset] == 0:
            del pending[offset]

    def in_flight(self) -> int:
        """Records started and not finished, over every partition."""
        return sum(len(p) for p in self._in_flight.values())

    def committable(self) -> dict[Hashable, int]:
        """Partition -> offset to commit, for partitions that moved since the last call."""
        ready: dict[Hashable, int] = {}
        for partition, end in self._next.items():
            heap = self._heaps.get(partition, [])
            pending = self._in_flight.get(partition, {})
            while heap and heap[0] not in pending:
                heappop(heap)
            safe = heap[0] if heap else end
            if safe > self._committed.get(partition, -1):
                ready[partition] = safe
                self._committed[partition] = safe
        return ready

    def forget(self, partition: Hashable) -> None:
        """Drop a partition this consumer no longer owns (after a rebalance)."""
        for table in (self._in_flight, self._heaps, self._next, self._committed):
            table.pop(partition, None)
