"""BatchingProducer: per-partition batches, deliveries that complete only once stored, retries.

A stand-in for aiokafka's producer plays the broker here, so that a batch's fate (stored,
failed, still on its way) is decided by the test. The real broker's view is in
tests/integration/test_kafka_roundtrip.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatch
from newsalert_native import RecordBatch

from services.common.batching_producer import BatchingProducer, RecordTooLarge

TOPIC = "alerts"
PARTITIONS = 3


class SentBatch:
    """A batch as the broker would read it (through aiokafka's reader)."""

    def __init__(self, batch: RecordBatch) -> None:
        read = DefaultRecordBatch(batch._build())
        assert read.validate_crc()
        self.records = [(record.key, record.value) for record in read]


class FakeProducer:
    """Queues one batch per partition, as aiokafka does; the test settles each batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int, SentBatch, asyncio.Future[None]]] = []
        self.arrived = asyncio.Event()
        self.refuse_next = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> Any:
        for _, earlier_partition, _, future in self.batches:
            if earlier_partition == partition and not future.done():
                await asyncio.wait([future])
        if self.refuse_next:
            self.refuse_next -= 1
            raise KafkaTimeoutError()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.batches.append((topic, partition, SentBatch(batch), future))
        self.arrived.set()
        return future

    async def next_batch(self) -> tuple[int, SentBatch, asyncio.Future[None]]:
        """The oldest batch not settled yet, waiting for one to arrive."""
        while True:
            for _, partition, batch, future in self.batches:
                if not future.done():
                    return partition, batch, future
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 5)

    def stored(self) -> list[tuple[int, bytes | None, bytes | None]]:
        return [
            (partition, key, value)
            for _, partition, batch, future in self.batches
            if future.done() and not future.exception()
            for key, value in batch.records
        ]


async def _producer(fake: FakeProducer, **options: Any) -> BatchingProducer:
    producer = BatchingProducer(fake, retry_backoff_s=0.01, **options)
    await producer.prepare([TOPIC])
    return producer


async def test_a_delivery_completes_only_when_every_record_is_stored() -> None:
    fake = FakeProducer()
    producer = await _producer(fake)
    keys = [f"tenant/rule-{n}".encode() for n in range(12)]
    delivery = producer.send([(TOPIC, key, b"alert") for key in keys])
    partitions_used = {DefaultPartitioner()(k, [0, 1, 2], [0, 1, 2]) for k in keys}
    for _ in range(len(partitions_used) - 1):
        _, _, future = await fake.next_batch()
        future.set_result(None)
        await asyncio.sleep(0)
        assert not delivery.done()
    _, _, future = await fake.next_batch()
    future.set_result(None)
    await asyncio.wait_for(delivery, 5)
    assert sorted(key for _, key, _ in fake.stored()) == sorted(keys)
    await producer.close()


async def test_records_land_in_the_partition_kafkas_partitioner_chooses() -> None:
    fake = FakeProducer()
    producer = await _producer(fake)
    keys = [f"tenant/rule-{n}".encode() for n in range(40)]
    delivery = producer.send([(TOPIC, key, b"v") for key in keys])
    while not delivery.done():
        _, _, future = await fake.next_batch()
        future.set_result(None)
        await asyncio.sleep(0)
    expected = {key: DefaultPartitioner()(key, [0, 1, 2], [0, 1, 2]) for key in keys}
    assert {key: partition for partition, key, _ in fake.stored()} == expected
    assert len(set(expected.values())) == PARTITIONS
    await producer.close()


async def test_records_arriving_while_a_batch_is_on_its_way_make_one_next_batch() -> None:
    fake = FakeProducer()
    producer = await _producer(fake)
    key = b"tenant/rule"
    first = producer.send([(TOPIC, key, b"0")])
    _, batch, in_flight = await fake.next_batch()
    assert batch.records == [(key, b"0")]
    later = [producer.send([(TOPIC, key, str(n).encode())]) for n in range(1, 51)]
    in_flight.set_result(None)
    await first
    _, batch, future = await fake.next_batch()
    assert [value for _, value in batch.records] == [str(n).encode() for n in range(1, 51)]
    future.set_result(None)
    await asyncio.wait_for(asyncio.gather(*later), 5)
    await producer.close()


async def test_a_full_batch_leaves_the_rest_for_the_next_one() -> None:
    fake = FakeProducer()
    # A batch's header is 61 bytes, and each of these records 16: room for four.
    producer = await _producer(fake, max_batch_bytes=61 + 4 * 16 + 15)
    delivery = producer.send([(TOPIC, b"same-key", str(n).encode()) for n in range(10)])
    sizes = []
    while not delivery.done():
        _, batch, future = await fake.next_batch()
        sizes.append(len(batch.records))
        future.set_result(None)
        await asyncio.sleep(0)
    assert sizes == [4, 4, 2]
    assert [value for _, _, value in fake.stored()] == [str(n).encode() for n in range(10)]
    await producer.close()


async def test_a_batch_kafka_did_not_store_is_sent_again_and_nothing_is_lost() -> None:
    fake = FakeProducer()
    retries: list[str] = []
    producer = await _producer(fake, on_retry=lambda topic, error: retries.append(topic))
    delivery = producer.send([(TOPIC, b"k", b"a"), (TOPIC, b"k", b"b")])
    _, _, future = await fake.next_batch()
    future.set_exception(KafkaTimeoutError())
    _, batch, future = await fake.next_batch()
    assert batch.records == [(b"k", b"a"), (b"k", b"b")]
    assert not delivery.done()
    future.set_result(None)
    await asyncio.wait_for(delivery, 5)
    assert retries == [TOPIC]
    await producer.close()


async def test_a_batch_refused_on_submission_is_sent_again() -> None:
    fake = FakeProducer()
    fake.refuse_next = 2
    retries: list[str] = []
    producer = await _producer(fake, on_retry=lambda topic, error: retries.append(topic))
    delivery = producer.send([(TOPIC, b"k", b"a")])
    _, batch, future = await fake.next_batch()
    assert batch.records == [(b"k", b"a")]
    future.set_result(None)
    await asyncio.wait_for(delivery, 5)
    assert retries == [TOPIC, TOPIC]
    await producer.close()


async def test_a_send_of_nothing_is_delivered_at_once() -> None:
    producer = await _producer(FakeProducer())
    assert producer.send([]).done()
    await producer.close()


async def _only_the_next_send_goes_out(fake: FakeProducer, producer: BatchingProducer) -> None:
    """After a refused send: the next one is stored, and nothing of the refused one went out."""
    delivery = producer.send([(TOPIC, b"k", b"next")])
    _, batch, future = await fake.next_batch()
    assert batch.records == [(b"k", b"next")]  # nothing of the refused send went out
    future.set_result(None)
    await asyncio.wait_for(delivery, 5)
    await producer.close()


async def test_a_topic_not_prepared_refuses_the_whole_send() -> None:
    fake = FakeProducer()
    producer = await _producer(fake)
    with pytest.raises(KeyError):
        producer.send([(TOPIC, b"k", b"queued?"), ("elsewhere", b"k", b"v")])
    await _only_the_next_send_goes_out(fake, producer)


async def test_one_batch_of_several_sends_completes_each_send_exactly_once_stored() -> None:
    fake = FakeProducer()
    producer = await _producer(fake)
    key = b"tenant/rule"
    first = producer.send([(TOPIC, key, b"first")])  # goes out alone
    _, _, in_flight = await fake.next_batch()
    a = producer.send([(TOPIC, key, b"a1"), (TOPIC, key, b"a2")])
    b = producer.send([(TOPIC, key, b"b1")])
    c = producer.send([(TOPIC, key, b"c1"), (TOPIC, b"other/rule", b"c2"), (TOPIC, key, b"c3")])
    in_flight.set_result(None)
    await first
    _, batch, future = await fake.next_batch()  # every record of key, from a, b and c
    assert [value for _, value in batch.records] == [b"a1", b"a2", b"b1", b"c1", b"c3"]
    future.set_result(None)
    await asyncio.wait_for(asyncio.gather(a, b), 5)
    assert not c.done()  # c2 went to another partition's batch, not yet stored
    while not c.done():
        _, _, future = await fake.next_batch()
        future.set_result(None)
        await asyncio.sleep(0)
    await producer.close()


async def test_a_failed_batch_ending_inside_a_send_is_sent_again_and_completes_it_once() -> None:
    fake = FakeProducer()
    producer = await _producer(fake, max_batch_bytes=61 + 4 * 16 + 15)  # four records a batch
    values = [str(n).encode() for n in range(10)]
    delivery = producer.send([(TOPIC, b"same-key", value) for value in values])
    _, batch, future = await fake.next_batch()
    assert batch.records == [(b"same-key", value) for value in values[:4]]
    future.set_exception(KafkaTimeoutError())
    while not delivery.done():
        _, _, future = await fake.next_batch()
        future.set_result(None)
        await asyncio.sleep(0)
    assert sorted(value for _, _, value in fake.stored()) == sorted(values)
    await producer.close()


async def test_a_record_that_is_not_bytes_refuses_the_whole_send() -> None:
    fake = FakeProducer()
    producer = await _producer(fake)
    with pytest.raises(TypeError, match="bytes or None, not bytes and str"):
        producer.send([(TOPIC, b"k", b"queued?"), (TOPIC, b"k", "text")])  # type: ignore[list-item]
    await _only_the_next_send_goes_out(fake, producer)


async def test_a_record_kafka_would_refuse_for_its_size_refuses_the_whole_send() -> None:
    fake = FakeProducer()
    producer = await _producer(fake, max_record_bytes=100)
    with pytest.raises(RecordTooLarge, match="a record of 101 bytes, over the 100"):
        producer.send([(TOPIC, b"k", b"queued?"), (TOPIC, b"k", b"v" * 100)])
    await _only_the_next_send_goes_out(fake, producer)


async def test_a_record_of_exactly_the_bound_is_sent() -> None:
    fake = FakeProducer()
    producer = await _producer(fake, max_record_bytes=100)
    delivery = producer.send([(TOPIC, b"k", b"v" * 99)])
    _, batch, future = await fake.next_batch()
    assert batch.records == [(b"k", b"v" * 99)]
    future.set_result(None)
    await asyncio.wait_for(delivery, 5)
    await producer.close()
