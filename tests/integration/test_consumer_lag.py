"""Consumer lag read from the broker (services/common/lag.py), against a real one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import TopicPartition

from services.common.kafka import make_consumer
from services.common.lag import LagProbe
from services.common.topics import Topics
from tests.support.kafka_io import produce


@pytest.fixture
async def probe_and_group(kafka_bootstrap: str) -> AsyncIterator[tuple[LagProbe, str]]:
    group = f"lag-{uuid.uuid4().hex[:8]}"
    probe = LagProbe(kafka_bootstrap, group)
    await probe.start()
    try:
        yield probe, group
    finally:
        await probe.stop()


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    member = make_consumer(bootstrap, group_id=group)
    await member.start()
    try:
        member.assign(list(offsets))
        await member.commit(offsets)
    finally:
        await member.stop()


async def _end(bootstrap: str, partition: TopicPartition) -> int:
    reader = make_consumer(bootstrap, group_id=None)
    await reader.start()
    try:
        return int((await reader.end_offsets([partition]))[partition])
    finally:
        await reader.stop()


async def test_the_lag_keeps_growing_while_the_group_consumes_nothing(
    kafka_bootstrap: str, topics: Topics, probe_and_group: tuple[LagProbe, str]
) -> None:
    probe, group = probe_and_group
    topic = topics.articles.name
    owned = [(topic, 0), (topic, 1), (topic, 2)]
    await produce(kafka_bootstrap, topic, [(f"k{n}".encode(), b"x") for n in range(12)])
    # A member that has done nothing yet: committed offset 0 on one partition, none on the
    # others (its commit also has the broker set up the group's coordinator).
    await _commit(kafka_bootstrap, group, {TopicPartition(topic, 1): 0})
    assert await probe.lag(owned) == 12

    # Partition 0's records are done and committed; the others' are not.
    zero = TopicPartition(topic, 0)
    done = await _end(kafka_bootstrap, zero)
    await _commit(kafka_bootstrap, group, {zero: done})
    assert await probe.lag(owned) == 12 - done

    # No member consumes any more; records keep arriving, and the lag counts each of them.
    await produce(kafka_bootstrap, topic, [(f"later{n}".encode(), b"x") for n in range(5)])
    assert await probe.lag(owned) == 17 - done
    assert await probe.lag([(topic, 0)]) == await _end(kafka_bootstrap, zero) - done
    assert await probe.lag([]) == 0
