"""Many small records to Kafka in few requests, and word of when each group of them is safe.

An article at 10k rules raises about fifty alerts. Sent one by one (faust's `Topic.send`, or
aiokafka's `send`), each record pays for a future, a metadata check, a partitioner call and a
queue append: about 200 µs through faust, far more than matching the article. Here records are
buffered per partition, and each partition's buffer goes to aiokafka as one batch as soon as
that partition's previous batch has left (aiokafka queues one batch per partition): the busier
the stream, the bigger the batches. A batch is written natively in one call
(`newsalert_native.RecordBatch`, byte for byte what aiokafka would write record by record).

Each `send` returns a `Delivery` that completes when every one of its records was acknowledged
(the producer is idempotent with acks=all): the caller commits its input offset only then.
A batch that fails is queued again and resent after a pause, so records are never dropped;
at-least-once, like everything downstream of Kafka (a resent record carries the same id).
A record Kafka would refuse every time (over `MAX_RECORD_BYTES`) is refused by `send`
instead: resent for ever, it would hold back its whole partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from functools import partial
from typing import Any

# aiokafka ships no type information; see services/common/kafka.py.
from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped,unused-ignore]
from newsalert_native import RecordBatch

from services.common.kafka import MAX_BATCH_BYTES, KafkaError
from services.common.topics import MAX_RECORD_BYTES, record_size

log = logging.getLogger(__name__)

Record = tuple[str, bytes | None, bytes | None]
"""(topic, key, value); a None value is a tombstone."""

_BYTES_OR_NONE = (bytes, type(None))


class RecordTooLarge(ValueError):
    """A record over what one Kafka record may take; nothing of its send was queued."""


class Delivery:
    """Completes when every record of one `send` was acknowledged by Kafka."""

    __slots__ = ("_done", "_pending")

    def __init__(self, records: int, done: asyncio.Future[None]) -> None:
        self._pending = records
        self._done = done
        if records == 0:
            done.set_result(None)

    def _acknowledged(self, records: int) -> None:
        self._pending -= records
        if self._pending == 0:
            self._done.set_result(None)

    def done(self) -> bool:
        """Whether every record was acknowledged."""
        return self._done.done()

    def __await__(self) -> Generator[Any, None, None]:
        return self._done.__await__()


Run = list[Any]
"""[delivery, records]: how many of a lane's records, in a row, belong to one `send`."""


class _Lane:
    """The records waiting for one topic-partition, and the task that sends them."""

    __slots__ = ("keys", "partition", "runs", "task", "topic", "values", "wake")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        # Columns, as `RecordBatch` takes them: a batch is written from their heads.
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.runs: deque[Run] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def take(self, count: int) -> tuple[list[bytes | None], list[bytes | None], list[Run]]:
        """Remove the first `count` records: their keys, values and runs."""
        keys, values = self.keys[:count], self.values[:count]
        del self.keys[:count], self.values[:count]
        runs: list[Run] = []
        while count:
            run = self.runs[0]
            if run[1] <= count:
                runs.append(self.runs.popleft())
                count -= run[1]
            else:  # the batch ends inside this send's records
                runs.append([run[0], count])
                run[1] -= count
                count = 0
        return keys, values, runs

    def put_back(
        self, keys: list[bytes | None], values: list[bytes | None], runs: list[Run]
    ) -> None:
        """Return records `take` removed to the front, to be sent first."""
        self.keys[:0] = keys
        self.values[:0] = values
        self.runs.extendleft(reversed(runs))


_Taken = tuple[list[bytes | None], list[bytes | None], list[Run]]


class _Topic:
    """One prepared topic: its partitions and each key's lane."""

    __slots__ = ("lanes", "partitions", "placed")

    def __init__(self, partitions: list[int]) -> None:
        self.partitions = partitions
        # Keys repeat (an alert's key is its tenant and rule): murmur2 is pure Python in
        # aiokafka, so each key is placed once. Bounded against keys that never repeat.
        self.placed: dict[bytes | None, _Lane] = {}
        self.lanes: dict[int, _Lane] = {}


class BatchingProducer:
    """Sends records in per-partition batches through one started aiokafka producer.

    Keys are partitioned as Kafka's Java client and aiokafka do (murmur2), so a record lands
    where `producer.send` would have put it.
    """

    def __init__(
        self,
        producer: Any,
        *,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
        retry_backoff_s: float = 0.5,
        on_retry: Callable[[str, KafkaError], None] | None = None,
    ) -> None:
        """Wrap `producer`, an AIOKafkaProducer the caller starts and stops.

        Batches are written here, uncompressed and outside any transaction, whatever the
        producer's own settings say (`make_producer`'s are those).

        Args:
            producer: the started producer.
            max_batch_bytes: bound of each batch (a record larger alone goes alone).
            max_record_bytes: bound of one record's key and value; `send` refuses more.
            retry_backoff_s: pause before a failed batch is sent again.
            on_retry: called with the topic and the error each time a batch is requeued.
        """
        self._producer = producer
        self._max_batch_bytes = max_batch_bytes
        self._max_record_bytes = max_record_bytes
        self._retry_backoff_s = retry_backoff_s
        self._on_retry = on_retry
        self._partitioner = DefaultPartitioner()
        self._topics: dict[str, _Topic] = {}
        self._placed_max = 1 << 16

    async def prepare(self, topics: Iterable[str]) -> None:
        """Learn the partitions of every topic `send` will be given (waits for metadata)."""
        for topic in topics:
            partitions = await self._producer.partitions_for(topic)
            self._topics[topic] = _Topic(sorted(partitions))

    def send(self, records: Iterable[Record]) -> Delivery:
        """Queue records for sending; the returned delivery completes when all are stored.

        Raises:
            KeyError: a topic that `prepare` was not given.
            TypeError: a key or value that is neither bytes nor None.
            RecordTooLarge: a record whose key and value are over `max_record_bytes`.
            (Whichever it is, nothing of the send is queued.)
        """
        queued = list(records)
        delivery = Delivery(len(queued), asyncio.get_running_loop().create_future())
        # An article's fifty-odd alerts come here together: per record, a lookup and two
        # appends; each lane touched gets one run and is woken once.
        # Every lane is found before any record is queued: a topic not prepared refuses the
        # whole send, not the rest of it.
        lanes = [self._lane(topic, key) for topic, key, _ in queued]
        # Checked here, where the caller can be told: a record the batch writer or Kafka
        # refuses later would stop its lane, and every send to that partition with it.
        for _, key, value in queued:
            if not (type(key) in _BYTES_OR_NONE and type(value) in _BYTES_OR_NONE):
                raise TypeError(
                    f"record keys and values are bytes or None, not {type(key).__name__} "
                    f"and {type(value).__name__}"
                )
            size = record_size(key, value)
            if size > self._max_record_bytes:
                raise RecordTooLarge(
                    f"a record of {size} bytes, over the {self._max_record_bytes} one Kafka "
                    "record may take"
                )
        counts: dict[_Lane, int] = {}
        for lane, (_, key, value) in zip(lanes, queued, strict=True):
            lane.keys.append(key)
            lane.values.append(value)
            counts[lane] = counts.get(lane, 0) + 1
        for lane, count in counts.items():
            lane.runs.append([delivery, count])
            lane.wake.set()
        return delivery

    async def close(self) -> None:
        """Stop the lanes' tasks; records not yet sent stay unacknowledged."""
        lanes = [lane for prepared in self._topics.values() for lane in prepared.lanes.values()]
        tasks = [lane.task for lane in lanes if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- inside --------------------------------------------------------------------------

    def _lane(self, topic: str, key: bytes | None) -> _Lane:
        """The lane of the partition Kafka's partitioner puts `key` in."""
        prepared = self._topics[topic]
        lane = prepared.placed.get(key)
        if lane is not None:
            return lane
        if key is None:
            partition = prepared.partitions[0]
        else:
            partitions = prepared.partitions
            partition = self._partitioner(key, partitions, partitions)
        lane = prepared.lanes.get(partition)
        if lane is None:
            lane = prepared.lanes[partition] = _Lane(topic, partition)
            lane.task = asyncio.get_running_loop().create_task(self._run(lane))
        if len(prepared.placed) >= self._placed_max:
            prepared.placed.clear()
        prepared.placed[key] = lane
        return lane

    async def _run(self, lane: _Lane) -> None:
        while True:
            await lane.wake.wait()
            lane.wake.clear()
            while lane.keys:
                await self._send_one_batch(lane)

    async def _send_one_batch(self, lane: _Lane) -> None:
        # The first record always fits; the rest as far as `max_batch_bytes` allows.
        batch = RecordBatch(lane.keys, lane.values, self._max_batch_bytes, int(time.time() * 1000))
        taken = lane.take(batch.record_count())
        try:
            # Waits while this partition's previous batch is still queued in aiokafka: the
            # records arriving meanwhile make the next batch.
            sent = await self._producer.send_batch(batch, lane.topic, partition=lane.partition)
        except KafkaError as exc:
            self._requeue(lane, taken, exc)
            await asyncio.sleep(self._retry_backoff_s)
            return
        sent.add_done_callback(partial(self._settled, lane, taken))

    def _settled(self, lane: _Lane, taken: _Taken, sent: asyncio.Future[Any]) -> None:
        error = None if sent.cancelled() else sent.exception()
        if sent.cancelled() or error is not None:
            failure = error if isinstance(error, KafkaError) else KafkaError(repr(error))
            self._requeue(lane, taken, failure)
            asyncio.get_running_loop().call_later(self._retry_backoff_s, lane.wake.set)
            return
        for delivery, count in taken[2]:
            delivery._acknowledged(count)

    def _requeue(self, lane: _Lane, taken: _Taken, error: KafkaError) -> None:
        log.warning(
            "a batch was not stored; it will be sent again",
            extra={"topic": lane.topic, "partition": lane.partition, "error": repr(error)},
        )
        if self._on_retry is not None:
            self._on_retry(lane.topic, error)
        lane.put_back(*taken)
