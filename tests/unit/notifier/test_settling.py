"""A delivery that could not be settled is settled again, in process, until it is.

An unforeseen error must not leave an alert undelivered until the next restart (a Kafka that
is busy or away is waited for when the outcome is stored, without settling again). Settling
is replaced here by a step that fails a given number of times; the broker restart of
tests/integration/test_faults.py is the promise against a real broker.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from schemas.delivery import DeliveryTask
from services.common.settings import NotifierSettings
from services.notifier import service
from services.notifier.service import Notifier
from tests.unit.notifier.builders import make_alert


async def test_an_unsettled_delivery_is_settled_again_until_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "SETTLE_RETRY_FIRST_S", 0.001)
    notifier = Notifier(NotifierSettings())
    task = DeliveryTask(
        alert=make_alert(), subscription_id="hook", next_attempt=1, not_before=datetime.now(UTC)
    )
    tries: list[str] = []

    async def settle(settling: list[DeliveryTask]) -> None:
        tries.extend(task.alert.alert_id for task in settling)
        if len(tries) < 3:
            raise TimeoutError("the producer's batch did not drain")

    monkeypatch.setattr(notifier, "_settle", settle)
    await asyncio.wait_for(notifier._settle_until_done([task]), timeout=10)
    assert tries == [task.alert.alert_id] * 3
    assert notifier.metrics.settle_retries._value.get() == 2


async def test_a_stopping_notifier_leaves_an_unsettled_delivery_for_the_next_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notifier = Notifier(NotifierSettings())
    task = DeliveryTask(
        alert=make_alert(), subscription_id="hook", next_attempt=1, not_before=datetime.now(UTC)
    )

    async def settle(settling: list[DeliveryTask]) -> None:
        raise TimeoutError("the broker is away")

    monkeypatch.setattr(notifier, "_settle", settle)
    running = asyncio.create_task(notifier._settle_until_done([task]))
    await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
