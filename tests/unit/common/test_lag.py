"""Consumer lag: the arithmetic, and the loop that keeps the gauge current. No broker here
(tests/integration/test_consumer_lag.py asks a real one)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from prometheus_client import CollectorRegistry, Gauge

from services.common.kafka import KafkaError
from services.common.lag import LagProbe, Partition, records_waiting, report_lag

A0, A1, A2 = ("articles", 0), ("articles", 1), ("articles", 2)


def test_records_waiting_run_from_the_committed_offset_to_the_end() -> None:
    assert records_waiting({A0: 10, A1: 7}, {A0: 4, A1: 7}, {}) == 6


def test_a_partition_the_group_never_committed_waits_from_its_first_offset() -> None:
    # -1 is how the broker says "no commit"; the first offset is not always 0 (retention).
    assert records_waiting({A0: 10, A1: 10, A2: 10}, {A1: -1, A2: 3}, {A0: 2, A1: 0}) == 25


def test_records_waiting_are_never_negative() -> None:
    assert records_waiting({A0: 5}, {A0: 9}, {}) == 0


class _Probe(LagProbe):
    """Answers from a script: a number, or an error to raise."""

    def __init__(self, answers: list[int | Exception]) -> None:
        super().__init__("127.0.0.1:9", "group")
        self.answers = answers
        self.asked: list[list[Partition]] = []
        self.done = asyncio.Event()

    async def lag(self, owned: Iterable[Partition]) -> int:
        if not self.answers:  # the script is over: the loop waits here for ever
            self.done.set()
            await asyncio.get_running_loop().create_future()
        self.asked.append(list(owned))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_the_gauge_follows_every_reading_and_keeps_its_value_when_the_broker_fails() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("lag", "test", registry=registry)
    readings: list[float] = []
    probe = _Probe([3, 9, KafkaError("down"), 14])
    owned = [[A0], [A0, A1], [A0, A1], []]

    def partitions() -> list[Partition]:
        readings.append(
            registry.get_sample_value("lag") or 0
        )  # what the gauge said before this reading
        return owned[min(len(readings), len(owned)) - 1]

    task = asyncio.create_task(report_lag(probe, partitions, gauge, interval_s=0))
    await probe.done.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert readings == [0, 3, 9, 9, 14]
    assert registry.get_sample_value("lag") == 14
    assert probe.asked == owned
